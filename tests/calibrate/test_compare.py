"""Pairing measured runs with predictions: job construction, errors, summaries, run sets."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.calibrate.compare import (
    BREAKDOWN_KEYS,
    Row,
    compare_run,
    fastest_agreement,
    job_on_one_node,
    occupied_cluster,
    read_measured,
    summarize_rows,
    tenth_percentile,
)
from fugaku_sim.calibrate.runs import default_runs, load_runs, quick_runs
from fugaku_sim.errors import UserError
from fugaku_sim.spec import load_cluster, load_model_preset


def _row(label: str, model: str, ranks: int, measured: float, predicted: float) -> Row:
    zero = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    return Row(label=label, model=model, ranks=ranks, tp=1, pp=1, dp=ranks, micro_batch=1,
               global_batch=8, measured_step_s=measured, predicted_step_s=predicted,
               measured_breakdown_s=zero, predicted_breakdown_s=zero, steps_timed=3,
               measured_spread=0.0, source="")


def test_occupied_cluster_gives_a_lone_rank_its_share() -> None:
    local = load_cluster("local")  # processes_per_node 2
    one = occupied_cluster(local, 1)
    assert one.node.processes_per_node == 1
    assert one.node.peak_TFLOPs.fp32 == pytest.approx(local.node.peak_TFLOPs.fp32 / 2)
    assert one.node.mem_bw_GBps == pytest.approx(local.node.mem_bw_GBps / 2)
    assert occupied_cluster(local, 2) is local
    assert occupied_cluster(local, 4) is local


def _write_run(tmp: Path, times: list[float], tp: int = 1, dp: int = 2) -> Path:
    preset = load_model_preset("gpt-micro")
    summary = {"model": preset.model.model_dump(mode="json"),
               "train": {"global_batch": 8, "micro_batch": 2},
               "layout": {"tp": tp, "pp": 1, "dp": dp}, "step_time_s_mean": 99.0}
    (tmp / "summary.json").write_text(json.dumps(summary))
    lines = [{"step": i + 1, "step_time_s": t,
              "breakdown_s": {"compute": t * 0.9, "dp_comm": t * 0.1}}
             for i, t in enumerate(times)]
    (tmp / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp


def test_read_measured_skips_warmup(tmp_path: Path) -> None:
    m = read_measured(_write_run(tmp_path, [5.0, 3.0, 1.0, 2.0]), warmup=2)
    assert m.step_time_s == pytest.approx(1.5)
    assert m.steps_timed == 2
    assert m.breakdown_s["compute"] == pytest.approx(1.35)
    assert m.breakdown_s["bubble"] == 0.0
    assert m.layout.dp == 2


def test_a_run_trained_in_passes_is_the_mean_of_its_passes(tmp_path: Path) -> None:
    """validate --repeats: pass k in <run>/repeat-k; each pass's median, their mean, their
    range; the breakdown over every timed step; the largest foreign share of any pass."""
    run = _write_run(tmp_path, [9.0, 1.0, 2.0, 3.0])  # timed median 2.0
    (tmp_path / "machine.json").write_text('{"foreign_cpu_share": 0.01}')
    for k, times, share in ((2, [9.0, 4.0, 4.0, 4.0], 0.2), (3, [9.0, 3.0, 3.0, 3.0], 0.0)):
        (d := tmp_path / f"repeat-{k}").mkdir()
        _write_run(d, times)
        (d / "machine.json").write_text(f'{{"foreign_cpu_share": {share}}}')
    (tmp_path / "repeat-x").mkdir()  # not a pass
    (tmp_path / "repeat-4").mkdir()  # no summary: an unfinished pass, left out
    m = read_measured(run, warmup=1)
    assert m.step_time_s == pytest.approx(3.0)  # mean of 2, 4 and 3
    assert m.step_time_stats["pass_values"] == [2.0, 4.0, 3.0]
    assert m.step_time_stats["pass_spread"] == pytest.approx(2.0 / 3.0)
    assert m.steps_timed == 9
    assert m.breakdown_s["compute"] == pytest.approx(0.9 * 27.0 / 9)
    assert m.machine["foreign_cpu_share"] == 0.2 and m.machine["passes"] == 3
    local = load_cluster("local")
    summary = summarize_rows([compare_run(local, m)])
    assert summary["median_pass_spread"] == pytest.approx(2.0 / 3.0)
    assert summary["contended_runs"] == 1  # one pass shared the machine


def test_passes_run_through_the_set_forward_then_backward(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fugaku_sim.calibrate import execute
    from fugaku_sim.calibrate.runs import RunSpec

    runs = [RunSpec(model="gpt-micro", dp=dp, micro_batch=2, global_batch=8, steps=3)
            for dp in (1, 2)]
    trained: list[str] = []

    def train(launcher: object, ranks: int, argv: list[str], *a: object, **k: object) -> None:
        out = Path(argv[argv.index("--out") + 1])
        trained.append(str(out.relative_to(tmp_path / "runs")))

    probes = iter(range(1, 7))
    monkeypatch.setattr(execute, "run_mpi", train)
    monkeypatch.setattr(execute, "run_probe", lambda: 0.01 * next(probes))
    monkeypatch.setattr(execute, "prepare_data",
                        lambda runs, data: {"gpt-micro": tmp_path / "data"})
    dirs = execute.execute_runs(runs, None, tmp_path / "runs", tmp_path / "data", 1.0,  # type: ignore[arg-type]
                                repeats=3)
    a, b = (d.name for d in dirs)
    assert trained == [a, b, f"{b}/repeat-2", f"{a}/repeat-2", f"{a}/repeat-3",
                       f"{b}/repeat-3"]
    # each run's machine.json: the probe taken as it started (the k-th probe for the k-th)
    assert [json.loads((tmp_path / "runs" / t / "machine.json").read_text())["speed_probe_s"]
            for t in trained] == pytest.approx([0.01 * k for k in range(1, 7)])


def test_a_measured_run_is_labelled_as_the_run_validate_started(tmp_path: Path) -> None:
    """The comparison's row and the run it started carry one label, memory savers included
    (runs that differ only in their ZeRO stage or recomputation stay apart)."""
    from fugaku_sim.calibrate.compare import run_label
    from fugaku_sim.calibrate.runs import RunSpec

    _write_run(tmp_path, [1.0, 1.0])
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["train"].update(zero_stage=2, recompute="selective", overlap_grad_reduce=True)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run = RunSpec(model="gpt-micro", dp=2, micro_batch=2, global_batch=8, zero_stage=2,
                  recompute="selective", overlap_grad_reduce=True)
    assert run_label(read_measured(tmp_path)) == run.label == (
        "gpt-micro tp1 pp1 dp2 mb2 zero2 selective overlap")


def test_read_measured_falls_back_to_the_summary(tmp_path: Path) -> None:
    _write_run(tmp_path, [1.0])
    (tmp_path / "metrics.jsonl").unlink()
    assert read_measured(tmp_path / "summary.json").step_time_s == 99.0


def test_read_measured_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="summary.json: no such file; point it at a finished"):
        read_measured(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(UserError, match="'train'"):
        read_measured(tmp_path)


def test_job_puts_every_rank_on_one_node(tmp_path: Path) -> None:
    m = read_measured(_write_run(tmp_path, [1.0, 1.0, 1.0], tp=2, dp=2))
    job = job_on_one_node(load_cluster("local"), m)
    assert job.nodes == 1 and job.processes_per_node == 4


def test_summary_errors_and_fastest() -> None:
    rows = [_row("a", "m", 2, 1.0, 1.05), _row("b", "m", 2, 2.0, 1.6),
            _row("c", "m", 4, 0.8, 1.2), _row("d", "n", 1, 1.0, 1.0)]
    s = summarize_rows(rows)
    assert s["median_abs_error"] == pytest.approx((0.05 + 0.2) / 2)
    assert s["worst_abs_error"] == pytest.approx(0.5) and s["worst_run"] == "c"
    by_model = s["fastest_by_model"]
    assert [(g["measured_fastest"], g["predicted_fastest"], g["agree"]) for g in by_model] == \
        [("c", "a", False)]
    assert s["fastest_agreed"] is False
    by_ranks = fastest_agreement(rows, "model+ranks")
    assert [(g["group"], g["agree"]) for g in by_ranks] == [("m 8 2", True)]
    with pytest.raises(UserError):
        summarize_rows([])


def test_run_sets() -> None:
    runs = default_runs()
    assert len(runs) >= 6
    assert {r.model for r in runs} == {"gpt-micro", "gpt-tiny"}
    assert {r.ranks for r in runs} == {1, 2, 4}
    assert any(r.tp > 1 and r.pp == 1 and r.dp == 1 for r in runs)
    assert any(r.pp > 1 and r.tp == 1 and r.dp == 1 for r in runs)
    assert any(r.dp > 1 and r.tp == 1 and r.pp == 1 for r in runs)
    assert any(sum(x > 1 for x in (r.tp, r.pp, r.dp)) >= 2 for r in runs)
    for model in ("gpt-micro", "gpt-tiny"):
        assert len({r.global_batch for r in runs if r.model == model}) == 1
    assert [r.ranks for r in quick_runs()] == [1, 2]
    assert load_runs("quick") == quick_runs()


def test_zero_run_set_trains_what_it_says() -> None:
    """The ``zero`` set: ZeRO 1-3 and selective recomputation up to tp 2 x pp 2 x dp 2, each
    run's options parsed by the trainer's own command line into the specs it names."""
    from fugaku_sim.calibrate.execute import check_predictable, train_args
    from fugaku_sim.cli import build_parser
    from fugaku_sim.commands.common import resolve_specs

    runs = load_runs("zero")
    assert {1, 2, 3} <= {r.zero_stage for r in runs} and max(r.ranks for r in runs) == 8
    assert len({r.slug for r in runs}) == len(runs) and len({r.global_batch for r in runs}) == 1
    for run in runs:
        args = build_parser().parse_args(train_args(run, run.model_name, Path("d"), Path("o")))
        _, train, layout = resolve_specs(args)
        assert (layout.tp, layout.pp, layout.dp) == (run.tp, run.pp, run.dp)
        assert (train.zero_stage, train.recompute, train.recompute_stages,
                train.overlap_grad_reduce) == (run.zero_stage, run.recompute,
                                               run.recompute_stages, run.overlap_grad_reduce)
    (full,) = [r for r in runs if r.ranks == 8]
    assert full.label == ("gpt-tiny tp2 pp2 dp2 mb4 zero2 selective recompute0 overlap")
    check_predictable(default_runs())  # the simulator models these


def test_sp_run_set_trains_what_it_says(tmp_path: Path) -> None:
    """The ``sp`` set: sequence parallelism up to tp 2 x pp 2 x dp 2, both families, ZeRO and
    recomputation; each run's options parsed by the trainer's command line, labelled ``sp``
    as the comparison labels the measured run."""
    from fugaku_sim.calibrate.compare import run_label
    from fugaku_sim.calibrate.execute import check_predictable, train_args
    from fugaku_sim.calibrate.runs import RunSpec
    from fugaku_sim.cli import build_parser
    from fugaku_sim.commands.common import resolve_specs

    runs = load_runs("sp")
    assert all(r.sequence_parallel for r in runs) and max(r.ranks for r in runs) == 8
    assert {r.model_name for r in runs} == {"gpt-tiny", "llama-tiny"}
    assert {0, 2, 3} <= {r.zero_stage for r in runs} and len({r.slug for r in runs}) == len(runs)
    for run in runs:
        args = build_parser().parse_args(train_args(run, run.model_name, Path("d"), Path("o")))
        _, train, layout = resolve_specs(args)
        assert layout.sequence_parallel and (layout.tp, layout.pp, layout.dp) == (
            run.tp, run.pp, run.dp)
        assert (train.zero_stage, train.recompute) == (run.zero_stage, run.recompute)
    check_predictable(runs)
    _write_run(tmp_path, [1.0, 1.0])
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["layout"].update(tp=2, dp=1, sequence_parallel=True)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run = RunSpec(model="gpt-micro", tp=2, micro_batch=2, global_batch=8,
                  sequence_parallel=True)
    assert run_label(read_measured(tmp_path)) == run.label == "gpt-micro tp2 pp1 dp1 mb2 sp"


def test_runs_the_simulator_cannot_predict_are_refused_before_training(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fugaku_sim.calibrate import execute
    from fugaku_sim.errors import SpecError
    from fugaku_sim.spec import job

    def refuse_zero3(model: object, train: Any, layout: object, engine: str) -> None:
        if train.zero_stage == 3 and engine == "sim":
            raise SpecError("train.zero_stage: 2 and 3: not modelled by the simulator yet")

    monkeypatch.setattr(job, "check_modelled", refuse_zero3)
    ran: list[object] = []
    monkeypatch.setattr(execute, "prepare_data", lambda *a: ran.append(a))
    with pytest.raises(UserError, match=r"^--runs: gpt-tiny tp1 pp1 dp2 mb4 zero3: train\."):
        execute.execute_runs(load_runs("zero"), None, Path("r"), Path("d"), 1.0)  # type: ignore[arg-type]
    assert ran == []  # nothing prepared, nothing trained


def test_run_file(tmp_path: Path) -> None:
    f = tmp_path / "runs.yaml"
    f.write_text("runs:\n  - {model: gpt-micro, dp: 2, micro_batch: 2, global_batch: 8}\n")
    (run,) = load_runs(str(f))
    assert run.ranks == 2 and run.label == "gpt-micro tp1 pp1 dp2 mb2"
    f.write_text("runs:\n  - {model: gpt-micro, micro_batch: 2, global_batch: 8, tpp: 2}\n")
    with pytest.raises(UserError, match=r"runs\.0\.tpp"):
        load_runs(str(f))
    with pytest.raises(UserError, match="neither"):
        load_runs("nope")


def test_occupancy_from_the_calibration() -> None:
    local = load_cluster("local")  # 2 processes per node, 2 cores
    occ = {"processes_per_node": 2,
           "lone_process": {"peak_ratio": 1.5, "mem_bw_ratio": 1.2, "op_overhead_us": 7.0},
           "oversubscribed": {"ranks": 4, "compute_share": 0.5,
                              "intra_node_latency_us": 500.0, "intra_node_bw_GBps": 1.5}}
    one = occupied_cluster(local, 1, occ)
    assert one.node.peak_TFLOPs.fp32 == pytest.approx(local.node.peak_TFLOPs.fp32 / 2 * 1.5)
    assert one.node.mem_bw_GBps == pytest.approx(local.node.mem_bw_GBps / 2 * 1.2)
    assert one.node.op_overhead_us == 7.0
    four = occupied_cluster(local, 4, occ)
    assert four.interconnect.intra_node.latency_us == 500.0  # type: ignore[union-attr]
    assert four.interconnect.intra_node.bw_GBps == 1.5  # type: ignore[union-attr]
    assert four.node == local.node  # a fair share: the simulator divides the node by 4 itself
    assert occupied_cluster(local, 2, occ) is local
    # other work on the machine: 4 ranks take more of it than 2 (0.6 of a core each, not 0.5)
    busy = {**occ, "oversubscribed": {**occ["oversubscribed"], "compute_share": 0.6}}
    four = occupied_cluster(local, 4, busy)
    assert four.node.peak_TFLOPs.fp32 == pytest.approx(local.node.peak_TFLOPs.fp32 * 1.2)
    assert four.node.mem_bw_GBps == pytest.approx(local.node.mem_bw_GBps * 1.2)


@pytest.mark.parametrize("ranks", [2, 4])
def test_fitted_factors_are_the_simulators(ranks: int) -> None:
    """The intra-node link is fitted with the cost formulas the simulator prices it by."""
    from fugaku_sim.calibrate.fit import ring_allreduce_factors
    from fugaku_sim.sim.predict import prepare
    from fugaku_sim.spec import Layout, TrainSpec, load_model, make_job

    local = load_cluster("local")
    ic = local.interconnect
    lat_factor, bw_factor = ring_allreduce_factors(ranks)
    for bw_GBps, lat_us, expect in ((1.0, 0.0, bw_factor * 1.0), (1e9, 1.0, lat_factor * 1e-6)):
        intra = ic.intra_node.model_copy(update={"bw_GBps": bw_GBps, "latency_us": lat_us})  # type: ignore[union-attr]
        cluster = local.model_copy(update={"interconnect": ic.model_copy(update={"intra_node": intra})})
        job = make_job(cluster, load_model("gpt-micro"), TrainSpec(global_batch=8 * ranks),
                       Layout(dp=ranks, processes_per_node=ranks))
        assert prepare(job).comm.dp_plan(0).time_s(1e9) == pytest.approx(expect, rel=1e-3)


def test_occupied_cluster_scales_elementwise_rates() -> None:
    local = load_cluster("local")
    node = local.node.model_copy(update={"elementwise_Gelem_per_s": {"gelu_fwd": 4.0}})
    cluster = local.model_copy(update={"node": node})
    one = occupied_cluster(cluster, 1, {"lone_process": {"mem_bw_ratio": 1.5}})
    assert one.node.elementwise_Gelem_per_s["gelu_fwd"] == pytest.approx(4.0 / 2 * 1.5)


def test_the_machine_speed_is_the_calibration_probe_over_the_runs(tmp_path: Path) -> None:
    """A run's probe is the mean of its passes'; its machine speed the calibration's probe
    time over it; the summary gives the median and range, the caption and CSV show them; a
    profile or run without probes gives none (older sidecars and runs still compare)."""
    from fugaku_sim.calibrate.report import caption, csv_text

    run = _write_run(tmp_path, [1.0, 1.0, 1.0])
    (tmp_path / "machine.json").write_text(json.dumps({"speed_probe_s": 0.010}))
    (d := tmp_path / "repeat-2").mkdir()
    _write_run(d, [1.0, 1.0, 1.0])
    (d / "machine.json").write_text(json.dumps({"speed_probe_s": 0.014}))
    m = read_measured(run)
    assert m.machine["speed_probe_s"] == pytest.approx(0.012)
    local = load_cluster("local")
    row = compare_run(local, m, occupancy={"speed_probe_s": 0.015})
    assert row.extra["machine_speed"] == pytest.approx(1.25)  # the runs' machine 25% faster
    other = compare_run(local, m, occupancy={"speed_probe_s": 0.009})
    s = summarize_rows([row, other])
    assert s["machine_speed_median"] == pytest.approx((1.25 + 0.75) / 2)
    assert s["machine_speed_range"] == pytest.approx([0.75, 1.25])
    assert "the machine ran at 1.00 x its speed at calibration (runs 0.75-1.25" in caption(s)
    assert csv_text([row]).splitlines()[1].endswith(",1.25")
    plain = summarize_rows([compare_run(local, m)])  # a profile calibrated without a probe
    assert plain["machine_speed_median"] is None and "speed at calibration" not in caption(plain)


def test_contended_runs_are_counted_and_left_out_of_the_quiet_figures(tmp_path: Path) -> None:
    (tmp_path / "machine.json").write_text(json.dumps({"foreign_cpu_share": 0.4}))
    assert read_measured(_write_run(tmp_path, [1.0, 1.0, 1.0])).machine == {
        "foreign_cpu_share": 0.4}
    quiet = _row("a", "m", 1, 1.0, 1.05)
    busy = _row("b", "m", 2, 2.0, 1.0)
    busy.extra["foreign_cpu_share"] = 0.4
    s = summarize_rows([quiet, busy])
    assert s["contended_runs"] == 1
    assert s["median_abs_error"] == pytest.approx(0.275)
    assert s["median_abs_error_quiet"] == pytest.approx(0.05)
    assert s["worst_abs_error_quiet"] == pytest.approx(0.05)
    busy_only = summarize_rows([busy])
    assert busy_only["median_abs_error_quiet"] is None


@given(st.lists(st.floats(0.001, 10.0), min_size=1, max_size=200))
def test_the_tenth_percentile_is_numpys_linear_one(times: list[float]) -> None:
    p10 = tenth_percentile(times)
    assert p10 == pytest.approx(float(np.percentile(times, 10)), rel=1e-9)
    assert min(times) * (1 - 1e-12) <= p10 <= statistics.median(times) * (1 + 1e-12)


def test_errors_against_the_undisturbed_steps(tmp_path: Path) -> None:
    """Each pass's 10th-percentile step, their mean; the summary's errors against it beside
    the median's; the caption shows them unless the measured step is already the p10."""
    from fugaku_sim.calibrate.report import caption

    # pass 1: after the warm-up step, 5 undisturbed steps and 6 in a burst
    run = _write_run(tmp_path, [9.0] + [1.0] * 5 + [3.0] * 6)  # p10 1.0, median 3.0
    (d := tmp_path / "repeat-2").mkdir()
    _write_run(d, [9.0] + [2.0] * 11)  # p10 2.0
    m = read_measured(run, warmup=1)
    assert m.step_time_stats["p10"] == pytest.approx(1.5)
    assert m.step_time_s == pytest.approx(2.5)  # the medians' mean
    assert read_measured(run, warmup=1, statistic="p10").step_time_s == pytest.approx(1.5)
    row = compare_run(load_cluster("local"), m)
    s = summarize_rows([row])
    assert s["median_abs_error_p10"] == pytest.approx(abs(row.predicted_step_s / 1.5 - 1.0))
    assert s["worst_abs_error_p10"] == s["median_abs_error_p10"]
    assert "10th-percentile step" in caption(s)
    assert "10th-percentile step" not in caption({**s, "statistic": "p10"})
    plain = summarize_rows([_row("a", "m", 1, 1.0, 1.1)])  # a row read without stats
    assert plain["median_abs_error_p10"] is None and "10th-percentile" not in caption(plain)
