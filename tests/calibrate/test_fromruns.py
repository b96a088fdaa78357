"""``calibrate --from-runs`` inputs: which rows are fitted (and why the others are not), this
project's training runs fitted with the same job mapping ``validate`` predicts with."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fugaku_sim.calibrate.compare import job_on_one_node, read_measured
from fugaku_sim.calibrate.fromruns import default_free, read_inputs, run_fit, select_rows
from fugaku_sim.calibrate.measured import MeasuredRun
from fugaku_sim.errors import UserError
from fugaku_sim.sim.predict import predict
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset
from fugaku_sim.spec.stack import IDEAL, with_values

TRUE = with_values(IDEAL, {"gemm_efficiency_scale": 0.5, "kernel_overhead_us": 30.0})


def _trainer_run(run_dir: Path, tp: int, pp: int, dp: int, cluster) -> Path:  # type: ignore[no-untyped-def]
    """A finished trainer run whose steps take what ``TRUE`` predicts for it."""
    run_dir.mkdir(parents=True)
    model = load_model_preset("gpt-micro").model
    train = TrainSpec(global_batch=8, micro_batch=2)
    layout = Layout(tp=tp, pp=pp, dp=dp)
    summary = {"model": model.model_dump(mode="json"), "train": train.model_dump(mode="json"),
               "layout": layout.model_dump(mode="json"), "world": layout.world, "steps": 6,
               "step_time_s_mean": 1.0, "steps_timed": 6}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "step_time_s": 1.0,
                                                       "breakdown_s": {}}) + "\n")
    job = job_on_one_node(cluster, read_measured(run_dir, 0), None, TRUE)
    t = predict(job).step_time_s
    lines = [json.dumps({"step": i, "step_time_s": t, "breakdown_s": {}}) for i in range(1, 7)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run_dir


def test_training_runs_fit_like_validate_predicts(tmp_path: Path) -> None:
    cluster = load_cluster("local")
    dirs = [_trainer_run(tmp_path / f"r{i}", *lay, cluster)
            for i, lay in enumerate([(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (2, 1, 2)])]
    inputs = read_inputs(dirs, "local")
    assert len(inputs.runs) == 5 and {Path(f["path"]).name for f in inputs.files} == {
        "summary.json", "metrics.jsonl"}
    result = run_fit(inputs, cluster, IDEAL, ["gemm_efficiency_scale", "kernel_overhead_us"],
                     [], ("measured",), False, None)
    values = dict(zip(result.problem.labels, result.fit.theta))
    assert math.exp(values["gemm_efficiency_scale"]) == pytest.approx(0.5, rel=1e-3)
    assert math.exp(values["kernel_overhead_us"]) == pytest.approx(30.0, rel=1e-3)
    assert result.summary()["worst_abs_error"] < 1e-3


def _row(**changes: object) -> MeasuredRun:
    fields: dict[str, object] = dict(
        id="a", cluster="fugaku", model="gpt2-small", tp=1, pp=1, dp=4, micro_batch=1,
        global_batch=1024, recompute="none", precision="fp32", nodes=1, processes_per_node=4,
        framework="megatron", step_time_s=600.0, time_quality="measured", source="notes")
    return MeasuredRun.model_validate(fields | changes)


def test_rows_left_out_say_why() -> None:
    rows = [_row(), _row(id="b", duplicate_of="a"), _row(id="c", time_quality="first-step"),
            _row(id="d", fit_exclude="flagged by the source"),
            _row(id="e", status="oom", step_time_s=None, time_quality=None),
            _row(id="f", representable=False, reason="selective recomputation"),
            _row(id="g", cluster="dgx-a100", tp=2, dp=4, nodes=1, processes_per_node=8)]
    keep, left = select_rows(rows, load_cluster("fugaku"))
    assert [r.id for r in keep] == ["a"]
    assert left == {"b": "duplicate of a (fitted once)", "c": "time quality first-step",
                    "d": "fit_exclude: flagged by the source", "e": "no step time (status oom)",
                    "f": "not representable (selective recomputation)",
                    "g": "ran on dgx-a100, not fugaku"}
    keep, _ = select_rows(rows, load_cluster("fugaku"), include_excluded=True)
    assert [r.id for r in keep] == ["a", "d"]
    assert default_free(keep) == ["gemm_efficiency_scale", "nongemm_efficiency",
                                  "kernel_overhead_us", "collective_efficiency.allreduce",
                                  "step_overhead_s"]
    with pytest.raises(UserError, match="no run to fit"):
        select_rows(rows[1:3], load_cluster("fugaku"))


def test_missing_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--from-runs: .*nope: no such file or folder"):
        read_inputs([tmp_path / "nope"], "local")
