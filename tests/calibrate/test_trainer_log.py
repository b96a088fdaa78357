"""This project's trainer output (``summary.json`` + ``metrics.jsonl``) -> measured runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from fugaku_sim.calibrate.measured import format_runs, job_of, parse_runs
from fugaku_sim.calibrate.trainer_log import run_from_trainer
from fugaku_sim.errors import UserError
from fugaku_sim.spec import Layout, TrainSpec, load_model_preset
from fugaku_sim.train.timers import BREAKDOWN_KEYS

TIMES = [0.9, 0.31, 0.25, 0.27, 0.26, 0.40]


def _write_run(run_dir: Path, times: list[float], warmup: int | None = None) -> Path:
    """A run directory as ``fugaku-sim train --out`` leaves it (and ``validate`` its run.json)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    model = load_model_preset("gpt-micro").model
    train = TrainSpec(global_batch=8, micro_batch=2, recompute="all", zero_stage=1)
    layout = Layout(tp=2, pp=1, dp=2)
    summary = {"model": model.model_dump(mode="json"), "train": train.model_dump(mode="json"),
               "layout": layout.model_dump(mode="json"), "world": 4, "steps": len(times),
               "step_time_s_mean": statistics.fmean(times), "steps_timed": len(times)}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    lines = [{"step": i, "loss": 5.0, "step_time_s": t, "tokens_per_s": 1.0,
              "breakdown_s": dict.fromkeys(BREAKDOWN_KEYS, t / 7)}
             for i, t in enumerate(times, start=1)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines),
                                           encoding="utf-8")
    if warmup is not None:
        (run_dir / "run.json").write_text(json.dumps({"warmup_steps": warmup}), encoding="utf-8")
    return run_dir


def test_median_after_warmup_and_the_runs_specs(tmp_path: Path) -> None:
    run = run_from_trainer(_write_run(tmp_path / "tp2-dp2", TIMES), cluster="local",
                           conditions={"blas": "openblas"})
    assert run.step_time_s == pytest.approx(statistics.median(TIMES[2:]))
    assert run.steps_timed == 4 and run.time_quality == "measured"
    assert (run.id, run.model, run.framework) == ("tp2-dp2", "gpt-micro", "fugaku-sim")
    assert (run.tp, run.pp, run.dp, run.nodes, run.processes_per_node) == (2, 1, 2, 1, 4)
    assert (run.micro_batch, run.global_batch, run.recompute, run.zero_stage) == (2, 8, "all", 1)
    model = load_model_preset("gpt-micro").model
    assert (run.layers, run.hidden, run.heads, run.vocab) == (
        model.layers, model.hidden, model.heads, model.vocab)
    assert run.conditions == {"blas": "openblas"}
    assert "median step_time_s of 4 steps after 2 warm-up steps" in run.source
    assert run.date is not None
    job = job_of(run)
    assert job.nodes == 1 and job.processes_per_node == 4
    assert parse_runs(format_runs([run]), Path("t.csv")) == [run]


def test_warmup_from_run_json_or_argument(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "r", TIMES, warmup=4)
    assert run_from_trainer(run_dir, cluster="local").step_time_s == pytest.approx(
        statistics.median(TIMES[4:]))
    assert run_from_trainer(run_dir / "summary.json", cluster="local",
                            warmup_steps=1).step_time_s == pytest.approx(
        statistics.median(TIMES[1:]))


def test_without_metrics_the_summary_mean(tmp_path: Path) -> None:
    run_dir = _write_run(tmp_path / "r", TIMES)
    (run_dir / "metrics.jsonl").unlink()
    run = run_from_trainer(run_dir, cluster="local")
    assert run.step_time_s == pytest.approx(statistics.fmean(TIMES))
    assert "step_time_s_mean" in run.source


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"summary\.json: no such file") as info:
        run_from_trainer(tmp_path / "nothing", cluster="local")
    assert "--from-metrics" not in str(info.value)
    run_dir = _write_run(tmp_path / "r", TIMES)
    with pytest.raises(UserError, match="condition names are lower_snake_case"):
        run_from_trainer(run_dir, cluster="local", conditions={"Bad Key": "x"})


@pytest.mark.mpi
@pytest.mark.slow
def test_a_real_training_run(tmp_path: Path) -> None:
    """The real trainer under mpiexec -n 2 (tp 2), then the importer on its output."""
    from fugaku_sim.calibrate.execute import execute_runs
    from fugaku_sim.calibrate.launch import parse_launcher
    from fugaku_sim.calibrate.runs import RunSpec

    spec = RunSpec(model="gpt-micro", tp=2, micro_batch=2, global_batch=4, steps=4,
                   warmup_steps=1)
    (run_dir,) = execute_runs([spec], parse_launcher(None), tmp_path / "runs",
                              tmp_path / "data", 300.0)
    run = run_from_trainer(run_dir, cluster="local")
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert run.step_time_s == pytest.approx(
        statistics.median(r["step_time_s"] for r in records if r["step"] > 1))
    assert (run.tp, run.dp, run.processes_per_node, run.steps_timed) == (2, 1, 2, 3)
    assert job_of(run).layout.tp == 2
