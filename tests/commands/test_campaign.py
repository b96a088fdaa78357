"""``fugaku-sim campaign`` end to end: JSON, table, plot, the policies, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from fugaku_sim.cli import main

REF = ["campaign", "--cluster", "fugaku", "--model", "fugaku-llm-13b", "--seeds", "200"]


@pytest.fixture(scope="module")
def reference_doc() -> dict:
    """The reference campaign's JSON, run once for the module."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*REF, "--json", "--start-date", "2024-01-15"]) == 0
    return json.loads(buf.getvalue())


def test_reference_json(reference_doc: dict) -> None:
    d = reference_doc
    assert (d["nodes"], d["steps"], d["seeds"]) == (13_824, 92_038, 200)
    assert d["policy"]["checkpoint_every"] == 250 and d["policy"]["elapse_h"] == 165.0
    assert d["policy"]["eval_every"] == 100 and d["policy"]["eval_iters"] == 10
    wall = d["wall_days"]
    # never faster than the failure-free steps plus evaluations and one start-up per job
    assert wall["p10"] > d["failure_free_days"]
    assert wall["p10"] <= wall["p50"] <= wall["p90"]
    assert d["jobs"]["p50"] >= 3  # 14 days of steps in 165-h jobs
    assert sum(d["mean_parts_h"].values()) == pytest.approx(wall["mean"] * 24, rel=1e-9)
    assert d["finish_date"]["p50"].startswith("2024-0")


def test_table_and_plot(run_cli, tmp_path: Path) -> None:
    png = tmp_path / "campaign.png"
    status, out, err = run_cli(*REF, "--seeds", "50", "--plot", str(png), "--elapse-h", "24",
                               "--checkpoint-every", "daly", "--spare-nodes", "1")
    assert status == 0, err
    assert "days to the token target" in out and "predict's single number" in out
    assert "(daly)" in out and "13,825 nodes allocated" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failure_free_what_if_is_steps_times_step(run_cli) -> None:
    status, out, err = run_cli(
        *REF, "--seeds", "3", "--json", "--no-failures", "--no-queue", "--eval-every", "none",
        "--checkpoint-every", "none", "--elapse-h", "1000", "--step-time-s", "10")
    assert status == 0, err
    d = json.loads(out)
    startup = d["costs_s"]["startup"]
    assert d["wall_days"]["p50"] == pytest.approx((92_038 * 10 + startup) / 86400, rel=1e-12)


def test_shrinking_is_reported(run_cli) -> None:
    status, out, err = run_cli(*REF, "--seeds", "20", "--json", "--mtbf-node-h", "1e5",
                               "--shrink-dp-min", "280", "--shrink-step", "scale")
    assert status == 0, err
    d = json.loads(out)
    assert d["policy"]["shrink_dp_min"] == 280
    assert d["system_mtbf_h"] == pytest.approx(1e5 / 13_824)


@pytest.mark.parametrize("args, message", [
    (["--elapse-h", "0.3"], "campaign.elapse_h (--elapse-h): 0.3 h is shorter than start-up"),
    (["--elapse-h", "-5"], "argument --elapse-h: must be positive"),
    (["--seeds", "0"], "argument --seeds: must be at least 1"),
    (["--spare-nodes", "-1"], "argument --spare-nodes: must be at least 0"),
    (["--checkpoint-every", "weekly"], "give a positive number of steps, young, daly or none"),
    (["--shrink-dp-min", "288"], "campaign.shrink_dp_min (--shrink-dp-min): 288 is not below"),
    (["--step-time-s", "3", "2", "1"], "--step-time-s: give P50, or P10 P50 P90"),
    (["--start-date", "soon"], "is not a date"),
    (["--tokens", "-1"], "train.tokens"),
])
def test_bad_input_is_one_line(run_cli, args: list[str], message: str) -> None:
    status, out, err = run_cli(*REF, *args)
    assert status == 2 and out == ""
    assert message in err and err.count("\n") == 1
