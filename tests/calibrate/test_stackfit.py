"""Fitting a stack to runs: parameters recovered from runs simulated on a known stack,
condition factors, identifiability errors, the command line (written file, exit 2 on bad
input, nothing half-written)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.calibrate.measured import MeasuredRun, job_of, write_runs
from fugaku_sim.calibrate.stackfit import (
    BOUNDS,
    Problem,
    _edge_of_flat,
    fit_rows,
    intervals90,
    leave_one_out,
    parse_condition_factor,
    prepare_rows,
)
from fugaku_sim.cli import main
from fugaku_sim.errors import UserError
from fugaku_sim.sim.predict import prepare, run_engine
from fugaku_sim.spec.stack import IDEAL, load_stack, stack_value, with_values

TRUE = with_values(IDEAL, {"gemm_efficiency_scale": 0.3, "nongemm_efficiency": 0.04,
                           "kernel_overhead_us": 150.0, "collective_efficiency.allreduce": 0.2,
                           "step_overhead_s": 0.3})
FREE = ["gemm_efficiency_scale", "nongemm_efficiency", "kernel_overhead_us",
        "collective_efficiency.allreduce", "step_overhead_s"]
SHAPES = [(4, 256, 4, 512), (6, 512, 8, 512), (8, 768, 12, 1024), (4, 1024, 16, 256)]


def _run(i: int, tp: int, dp: int, mb: int, shape: tuple[int, int, int, int],
         **extra: object) -> MeasuredRun:
    layers, hidden, heads, seq = shape
    fields: dict[str, object] = dict(
        id=f"r{i}", cluster="fugaku", model=f"m{hidden}", layers=layers, hidden=hidden,
        heads=heads, seq_len=seq, vocab=8192, tp=tp, pp=1, dp=dp, micro_batch=mb,
        global_batch=8 * dp * mb, recompute="none", precision="fp32", nodes=tp * dp,
        processes_per_node=1, framework="test", step_time_s=1.0, time_quality="measured",
        source="simulated on a known stack")
    return MeasuredRun.model_validate(fields | extra)


def _measured(run: MeasuredRun, stack=TRUE) -> MeasuredRun:  # type: ignore[no-untyped-def]
    job = job_of(run, stack=stack)
    t = run_engine(job, prepare(job), "fast").step_time_s
    return run.model_copy(update={"step_time_s": t})


def _runs(factor_on: set[int] = frozenset()) -> list[MeasuredRun]:  # type: ignore[assignment]
    out = []
    layouts = [(1, 1, 1), (2, 1, 2), (1, 4, 1), (4, 2, 1), (2, 4, 2), (1, 8, 4)]
    for i, (tp, dp, mb) in enumerate(layouts * 2):
        shape = SHAPES[i % len(SHAPES)]
        cond = {"allocator": "fast"} if i in factor_on else {}
        run = _run(i, tp, dp, mb, shape, conditions=cond)
        stack = (with_values(TRUE, {"nongemm_efficiency": 2 * TRUE.nongemm_efficiency})
                 if i in factor_on else TRUE)
        out.append(_measured(run, stack))
    return out


def test_parameters_are_recovered_from_runs_on_a_known_stack() -> None:
    problem = Problem(prepare_rows(_runs(), IDEAL), IDEAL, FREE)
    fit = fit_rows(problem)
    for path, (value, low, high) in intervals90(problem, fit).items():
        assert value == pytest.approx(stack_value(TRUE, path), rel=1e-3), path
        assert low <= value <= high
    loo = leave_one_out(problem, fit)
    assert np.max(np.abs(loo.errors)) < 1e-3


def test_a_condition_factor_is_recovered() -> None:
    runs = _runs(factor_on={1, 4, 7, 10})
    factors = parse_condition_factor("allocator=fast:nongemm_efficiency")
    problem = Problem(prepare_rows(runs, IDEAL), IDEAL, FREE, factors)
    fit = fit_rows(problem)
    iv = intervals90(problem, fit)
    assert iv["nongemm_efficiency@allocator=fast"][0] == pytest.approx(2.0, rel=1e-3)
    assert iv["nongemm_efficiency"][0] == pytest.approx(TRUE.nongemm_efficiency, rel=1e-3)


def test_an_efficiency_at_its_cap_gets_a_one_sided_interval() -> None:
    """Runs whose GEMMs all ran at the peak: any GEMM scale past the point where the last one
    reaches it fits them as well, so the interval is open above, not the zero width of a
    direction nothing depends on; a fit that overshoots the cap is brought back to it."""
    fast = with_values(TRUE, {"gemm_efficiency_scale": 50.0})
    base = with_values(TRUE, {"gemm_efficiency_scale": 1.0})
    runs = [_measured(r, fast) for r in _runs()]
    problem = Problem(prepare_rows(runs, base), base, ["gemm_efficiency_scale"])
    fit = fit_rows(problem)
    assert fit.capped == ["gemm_efficiency_scale"]
    value, low, high = intervals90(problem, fit)["gemm_efficiency_scale"]
    assert low <= value and high == BOUNDS[1]
    for i, run in enumerate(runs):  # the fitted runs are met
        assert fit.predicted_s[i] == pytest.approx(run.step_time_s, rel=1e-6)
    # at the value, 3% less slows some run: it is the edge of the cap, not a point past it
    slower = [_measured(r, with_values(fast, {"gemm_efficiency_scale": 0.97 * value}))
              .step_time_s / r.step_time_s for r in runs]
    assert max(slower) > 1.0 + 1e-6
    rows = list(range(len(runs)))
    edge = _edge_of_flat(problem, np.log([40.0]), rows, 0)
    assert math.exp(edge[0]) == pytest.approx(value, rel=1e-3)
    free = Problem(prepare_rows(_runs(), IDEAL), IDEAL, FREE)  # runs below the cap
    assert fit_rows(free).capped == []


def test_unidentifiable_fits_name_the_parameters() -> None:
    rows = prepare_rows(_runs()[:4], IDEAL)
    with pytest.raises(UserError, match=r"no run depends on collective_efficiency\.p2p"):
        fit_rows(Problem(rows, IDEAL, ["gemm_efficiency_scale", "collective_efficiency.p2p"]))
    with pytest.raises(UserError, match=r"4 runs cannot identify 5 free parameters "
                                        r"\(gemm_efficiency_scale, nongemm"):
        fit_rows(Problem(rows, IDEAL, FREE))
    one_mb = [r for r in _runs() if r.global_batch == 8 * r.dp * r.micro_batch][:6]
    same = [r.model_copy(update={"global_batch": r.dp * r.micro_batch}) for r in one_mb]
    with pytest.raises(UserError, match=r"cannot tell apart step_overhead_s, "
                                        r"micro_batch_overhead_s"):
        fit_rows(Problem(prepare_rows(same, IDEAL), IDEAL,
                         ["gemm_efficiency_scale", "step_overhead_s", "micro_batch_overhead_s"]))


@pytest.mark.parametrize("text", ["allocator:nongemm_efficiency", "a=b:nope", "a=b"])
def test_bad_condition_factor(text: str) -> None:
    with pytest.raises(UserError, match="--condition-factor"):
        parse_condition_factor(text)


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "runs.csv"
    write_runs(path, _runs())
    return path


def test_command_writes_a_stack_that_predicts_the_runs(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stacks" / "fitted.yaml"
    rc = main(["calibrate", "--from-runs", str(_csv(tmp_path)), "--cluster", "fugaku",
               "--out", str(out), "--free", ",".join(FREE), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["mode"] == "leave-one-out" and doc["summary"]["worst_abs_error"] < 1e-3
    stack = load_stack(str(out))
    assert stack.name == "fitted" and set(stack.intervals) == set(FREE)
    assert stack.gemm_efficiency_scale == pytest.approx(0.3, rel=1e-3)
    prov = stack.provenance
    assert prov is not None and prov.runs_files[0]["sha256"] and prov.parameters == FREE
    run = _runs()[3]
    job = replace(job_of(run), stack=stack)
    assert run_engine(job, prepare(job), "fast").step_time_s == pytest.approx(run.step_time_s,
                                                                               rel=1e-3)


def test_command_errors_are_one_line_and_write_nothing(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    csv = _csv(tmp_path)
    out = tmp_path / "x.yaml"
    base = ["calibrate", "--from-runs", str(csv), "--cluster", "fugaku", "--out", str(out)]
    assert main(base + ["--free", "collective_efficiency.p2p,gemm_efficiency_scale"]) == 2
    assert "no run depends on collective_efficiency.p2p" in capsys.readouterr().err
    assert main(base + ["--free", "gemm"]) == 2
    assert "--free: gemm is not a fittable parameter" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("tp")] = "two"
    bad.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    assert main(["calibrate", "--from-runs", str(bad), "--cluster", "fugaku", "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:{header.index('tp') + 1}: tp:" in err and "\n" not in err.strip()
    assert main(base[:-2] + ["--out", "ideal"]) == 2
    assert not out.exists() and not list(tmp_path.glob(".x.yaml*"))


def test_a_parameter_the_runs_barely_depend_on_is_named() -> None:
    """A fit can be of full rank yet leave a parameter practically free (its 90% interval
    from 1e-300 to 1e300): refused in one line naming it, before any stack is written."""
    from types import SimpleNamespace

    from fugaku_sim.calibrate.stackfit import PINNED_FACTOR, Z90, check_pinned

    labels = ["gemm_efficiency_scale", "kernel_overhead_us", "nongemm_efficiency"]
    problem = SimpleNamespace(labels=labels)
    wide = (math.log(PINNED_FACTOR) / Z90) ** 2
    fit = SimpleNamespace(covariance=np.diag([0.01, wide * 1.01, float("nan")]))
    with pytest.raises(UserError, match=r"do not pin down kernel_overhead_us, "
                                        r"nongemm_efficiency \(90% interval"):
        check_pinned(problem, fit)  # type: ignore[arg-type]
    check_pinned(problem, SimpleNamespace(covariance=np.diag([0.01, wide * 0.99, 0.0])))  # type: ignore[arg-type]
