"""The software stack and intervals on the verbs that predict: predict, plan, sweep, check,
campaign, sensitivity (JSON, tables, the tornado plot, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SMALL = ["--cluster", "fugaku", "--model", "gpt2-small", "--tp", "4", "--pp", "1", "--dp", "16",
         "--processes-per-node", "4", "--global-batch", "256", "--tokens", "1e9"]
FITTED = ["--stack", "deepspeedfugaku-2023"]


def _json(run_cli, *argv: str) -> dict:  # type: ignore[no-untyped-def]
    status, out, err = run_cli(*argv, "--json")
    assert status == 0, err
    return json.loads(out)


def test_predict_names_its_stack_and_reports_intervals(run_cli) -> None:  # type: ignore[no-untyped-def]
    ideal = _json(run_cli, "predict", *SMALL)
    fitted = _json(run_cli, "predict", *SMALL, *FITTED)
    assert ideal["stack"]["name"] == "ideal" and len(fitted["stack"]["sha256"]) == 64
    assert fitted["step_time_s"] > 3 * ideal["step_time_s"]  # the 2023 software is slow
    for d in (ideal, fitted):
        q = d["intervals"]["step_time_s"]
        assert q["p10"] < d["step_time_s"] < q["p90"]
        t = d["intervals"]["time_to_train_days"]
        assert t["p10"] < d["time_to_train_days"] < t["p90"]
    # the fitted stack's uncertainty widens the interval
    width = {k: d["intervals"]["step_time_s"]["p90"] / d["intervals"]["step_time_s"]["p10"]
             for k, d in (("ideal", ideal), ("fitted", fitted))}
    assert width["fitted"] > width["ideal"]
    assert _json(run_cli, "predict", *SMALL, "--no-intervals")["intervals"] is None


def test_what_if_scaling_and_its_identity(run_cli) -> None:  # type: ignore[no-untyped-def]
    base = _json(run_cli, "predict", *SMALL, *FITTED, "--no-intervals")
    fast = _json(run_cli, "predict", *SMALL, *FITTED, "--no-intervals",
                 "--stack-scale", "gemm_efficiency_scale=6")
    assert fast["step_time_s"] < base["step_time_s"]
    assert fast["stack"]["scaled_from"]["sha256"] == base["stack"]["sha256"]
    assert fast["stack"]["scale_factors"] == {"gemm_efficiency_scale": 6.0}


def test_plan_gives_intervals_to_the_best_rows(run_cli) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_cli("plan", "--cluster", "fugaku", "--model", "gpt2-small",
                               "--nodes", "12", "--global-batch", "96", *FITTED,
                               "--intervals-top", "2", "--json")
    assert status == 0, err
    rows = json.loads(out)["plans"]
    assert all(r["stack"]["name"] == "deepspeedfugaku-2023" for r in rows)
    assert [r["intervals"] is not None for r in rows[:3]] == [True, True, False]
    status, out, _ = run_cli("plan", "--cluster", "fugaku", "--model", "gpt2-small",
                             "--nodes", "12", "--global-batch", "96", "--top", "3")
    assert status == 0 and "p10..p90 for the best 3 only" in out.replace("\n", " ")


def test_check_adds_the_framework_memory(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = tmp_path / "heavy.yaml"
    stack.write_text("name: heavy\nframework_memory_GiB: 2.0\n")
    plain = _json(run_cli, "check", *SMALL)
    heavy = _json(run_cli, "check", *SMALL, "--stack", str(stack))
    per_rank = [s["framework"] for s in heavy["memory_by_stage_GiB"]]
    assert per_rank == [2.0] and plain["memory_by_stage_GiB"][0]["framework"] == 0.0
    assert heavy["memory_per_node_GiB"] == pytest.approx(plain["memory_per_node_GiB"] + 4 * 2.0)


def test_sweep_keeps_the_stack(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_cli("sweep", *SMALL, *FITTED, "--vary", "gemm_efficiency",
                               "--values", "0.5", "0.95", "--out", str(tmp_path), "--json")
    assert status == 0, err
    rows = json.loads(out)["rows"]
    assert all(r["stack"]["name"] == "deepspeedfugaku-2023" for r in rows)
    assert rows[0]["step_time_s"] > rows[1]["step_time_s"]


def test_campaign_samples_the_predicted_interval(run_cli) -> None:  # type: ignore[no-untyped-def]
    base = ["campaign", *SMALL, *FITTED, "--seeds", "20"]
    d = _json(run_cli, *base)
    assert isinstance(d["step_time_s"], dict)
    assert d["step_time_s"]["p10"] < d["predicted_step_time_s"] < d["step_time_s"]["p90"]
    fixed = _json(run_cli, *base, "--no-step-interval")
    assert fixed["step_time_s"] == pytest.approx(fixed["predicted_step_time_s"])


def test_sensitivity_ranks_and_plots(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "tornado.png"
    d = _json(run_cli, "sensitivity", *SMALL, *FITTED, "--plot", str(png), "--top", "5")
    assert d["ranked_by"] == "time_to_train" and len(d["inputs"]) == 5
    swings = [r["swing_time_to_train"] for r in d["inputs"]]
    assert swings == sorted(swings, reverse=True)
    assert all(r["measure"] for r in d["inputs"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status, out, err = run_cli("sensitivity", *SMALL, "--top", "3")
    assert status == 0, err
    assert "what moves the time to train" in out and "measure it with" in out


@pytest.mark.parametrize(("args", "message"), [
    (["predict", "--stack", "nope"], "--stack: no stack 'nope'"),
    (["predict", "--stack-scale", "gemm=2"], "--stack-scale: 'gemm=2' is not PARAMETER=FACTOR"),
    (["predict", "--draws", "1"], "--draws: need at least 2"),
    (["plan", "--nodes", "12", "--intervals-top", "-1"], "--intervals-top: must be 0 or more"),
])
def test_bad_stack_input_is_one_line(run_cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    status, out, err = run_cli(*args)
    assert status == 2 and message in err and err.count("\n") == 1
