"""Predicted vs measured: read a training run's metrics, predict the same job, line them up.

A measured run directory holds the trainer's ``summary.json`` (model, train settings and
layout of the run) and ``metrics.jsonl`` (one line per step). The measured step time is the
mean over the steps after ``warmup`` (the trainer's own ``step_time_s``: the slowest rank's
wall time of the step); the measured breakdown is the trainer's (mean over ranks).

The prediction is ``fugaku_sim.sim.predict.predict(job, "fast")`` for the same model, train
settings and layout, with every rank on one node of the calibrated cluster.

A rank is one single-threaded process. A node profile sized for P such processes
(``node.processes_per_node``) gives each of them 1/P of the node's rates. A ``ClusterSpec``
cannot say how the node behaves for a job of fewer or more ranks than P, so the
calibration measures it and keeps it in the sidecar's ``occupancy`` section, and
:func:`occupied_cluster` hands the simulator the node as such a job sees it (see there).
Nothing is fitted to the validation runs.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fugaku_sim.calibrate.contention import MACHINE_FILE, QUIET_SHARE, is_quiet
from fugaku_sim.calibrate.execute import repeat_dirs
from fugaku_sim.calibrate.probe import machine_speed
from fugaku_sim.calibrate.runs import layout_label
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object
from fugaku_sim.spec import ClusterSpec, Job, Layout, ModelSpec, TrainSpec, make_job
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS
from fugaku_sim.spec.cluster import SwitchedInterconnect
from fugaku_sim.spec.load import validate_section
from fugaku_sim.spec.record import parse_layout_record
from fugaku_sim.spec.stack import StackSpec
from fugaku_sim.train.metrics import read_metrics


@dataclass(frozen=True)
class Measured:
    """A finished run: its specs and mean timed step."""

    source: str
    model: ModelSpec
    train: TrainSpec
    layout: Layout
    step_time_s: float
    step_time_spread: float  # (max - min) / mean over the timed steps
    steps_timed: int
    breakdown_s: dict[str, float]
    step_time_stats: dict[str, Any] = field(default_factory=dict)  # mean, median, min; passes
    machine: dict[str, Any] = field(default_factory=dict)  # contention.CpuWatch figures


def _timed_records(metrics: Path, warmup: int) -> list[dict[str, Any]]:
    """The timed steps of a run (after ``warmup``), else its last step."""
    records = [r for r in read_metrics(metrics, skip_bad=True) if "step_time_s" in r]
    timed = [r for r in records if r["step"] > warmup]
    return timed or records[-1:]


STATISTICS = ("median", "mean", "min", "p10")


def tenth_percentile(times: list[float]) -> float:
    """The 10th percentile of a run's step times (linear between the two nearest, within the
    data): the run's undisturbed steps. Other work on a shared machine only ever slows a
    step, and it comes in bursts, so a run's median holds whatever share of its steps the
    neighbours took while its low percentiles stay with the machine alone, which is what
    the calibration's compute suite measures too (on the process's CPU clock, see
    :data:`fugaku_sim.calibrate.bench.COMPUTE_CLOCK`)."""
    if len(times) < 2:
        return times[0]
    return statistics.quantiles(times, n=10, method="inclusive")[0]


def _pooled(run_dir: Path, model: ModelSpec, train: TrainSpec, layout: Layout,
            pass_dirs: list[Path], passes: list[list[dict[str, Any]]],
            statistic: str) -> Measured:
    """A run measured in one or more passes (``validate --repeats``): each statistic is the
    mean over the passes of that pass's statistic (a pass is one stretch of the machine's
    speed; the mean weighs each alike), the breakdown the mean over every timed step, and
    ``pass_values`` / ``pass_spread`` (max - min over mean) say how far the passes disagree.
    ``machine`` is pass 1's (``run_dir``'s), with the largest foreign share of any pass
    (each directory's ``machine.json`` read once)."""
    per_pass = []
    for timed in passes:
        times = [float(r["step_time_s"]) for r in timed]
        per_pass.append({"mean": statistics.fmean(times), "median": statistics.median(times),
                         "min": min(times), "p10": tenth_percentile(times)})
    stats: dict[str, Any] = {k: statistics.fmean(p[k] for p in per_pass) for k in STATISTICS}
    every = [r for timed in passes for r in timed]
    times = [float(r["step_time_s"]) for r in every]
    breakdown = {k: statistics.fmean(float(r["breakdown_s"].get(k, 0.0)) for r in every)
                 for k in BREAKDOWN_KEYS}
    spread = (max(times) - min(times)) / stats["mean"] if stats["mean"] > 0 else 0.0
    values = [p[statistic] for p in per_pass]
    if len(passes) > 1:
        stats["pass_values"] = values
        stats["pass_spread"] = (max(values) - min(values)) / stats[statistic]
    figures = {d: _machine_figures(d) for d in (run_dir, *pass_dirs)}
    machine = figures[run_dir]
    shares = [float(x) for f in figures.values()
              if isinstance(x := f.get("foreign_cpu_share"), (int, float))]
    if len(shares) > 1:
        machine = {**machine, "foreign_cpu_share": max(shares), "passes": len(shares)}
    probes = [float(x) for f in figures.values()
              if isinstance(x := f.get("speed_probe_s"), (int, float)) and x > 0]
    if probes:  # the machine's speed as each pass started (probe.py): their mean
        machine = {**machine, "speed_probe_s": statistics.fmean(probes)}
    return Measured(str(run_dir), model, train, layout, stats[statistic], spread, len(times),
                    breakdown, stats, machine)


def _machine_figures(run_dir: Path) -> dict[str, Any]:
    """The run's ``machine.json`` (validate writes it), else {} (a run trained elsewhere)."""
    path = run_dir / MACHINE_FILE
    if not path.is_file():
        return {}
    return read_json_object(path, str(path), "re-run validate to measure it again")


def read_measured(path: Path, warmup: int = 2, statistic: str = "median") -> Measured:
    """A run directory (or its ``summary.json``) -> :class:`Measured`.

    The measured step time is the ``statistic`` of the timed steps: the median by default
    (a shared machine disturbs some steps; the median ignores a few), the mean (the
    trainer's summary), the 10th percentile (the undisturbed steps, :func:`tenth_percentile`)
    or the minimum.

    Raises:
        UserError: no summary, or a summary without the run's specs or timings.
    """
    run_dir = path.parent if path.name == "summary.json" else path
    summary_path = run_dir / "summary.json"
    summary = read_json_object(summary_path, f"--from-metrics: {summary_path}",
                               "point it at a finished training run's folder or summary.json")
    for key in ("model", "train", "layout"):
        if not isinstance(summary.get(key), dict):
            raise UserError(f"--from-metrics: {summary_path}: no {key!r} section")
    src = str(summary_path)
    model = validate_section(ModelSpec, summary["model"], src, "model")
    record = parse_layout_record(summary, src)  # the trainer writes its layout record
    train, layout = record.train, record.layout
    if train is None:  # the check above found a train section; None only if it was null
        raise UserError(f"--from-metrics: {summary_path}: no 'train' section")
    timed = [(d, t) for d in repeat_dirs(run_dir)
             if (d / "metrics.jsonl").is_file() and (t := _timed_records(d / "metrics.jsonl",
                                                                         warmup))]
    if timed:
        return _pooled(run_dir, model, train, layout, [d for d, _ in timed],
                       [t for _, t in timed], statistic)
    if "step_time_s_mean" not in summary:
        raise UserError(f"--from-metrics: {run_dir}: neither metrics.jsonl nor step_time_s_mean")
    bd = summary.get("breakdown_s_mean") or {}
    return Measured(str(run_dir), model, train, layout, float(summary["step_time_s_mean"]),
                    float("nan"), int(summary.get("steps_timed", 0)),
                    {k: float(bd.get(k, 0.0)) for k in BREAKDOWN_KEYS})


def _scaled_node(node: Any, peak: float, bw: float) -> dict[str, Any]:
    """Node fields with the peaks times ``peak`` and the memory bandwidth and per-element
    rates times ``bw``."""
    return {
        "peak_TFLOPs": node.peak_TFLOPs.model_copy(
            update={k: v * peak for k, v in node.peak_TFLOPs.model_dump().items()}),
        "mem_bw_GBps": node.mem_bw_GBps * bw,
        "elementwise_Gelem_per_s": {k: v * bw for k, v in node.elementwise_Gelem_per_s.items()},
    }


def occupied_cluster(
    cluster: ClusterSpec, ranks: int, occupancy: dict[str, Any] | None = None
) -> ClusterSpec:
    """The node as a job of ``ranks`` single-threaded processes sees it.

    - Fewer ranks than ``node.processes_per_node`` (P): the job occupies ranks/P of the
      node's rates; with calibrated ``occupancy`` a lone process also runs at its measured
      speed relative to one of P busy ones (shared caches, SMT, boost clock; the
      effective-bandwidth ratio also scales the per-element rates of non-GEMM ops).
    - More ranks than cores: the simulator already gives each process 1/ranks of the node
      (``layout.processes_per_node`` = ranks) and stretches its per-operation costs by
      ranks / cores; with calibrated ``occupancy`` the node's rates are scaled by 2 x the
      measured compute share of a process at twice the ranks, its per-operation cost by
      the inverse (1 when the cores are shared fairly: 2 x 0.5; more when other work on the
      machine loses CPU time to the extra processes), and every message step between ranks
      pays the measured intra-node latency and bandwidth of pairs of ranks all-reducing
      while every core is oversubscribed (a peer that is not running has to be scheduled
      first).
    - Otherwise the profile unchanged.
    """
    node = cluster.node
    per_node = node.processes_per_node
    if ranks < per_node:
        lone = (occupancy or {}).get("lone_process") or {}
        f = ranks / per_node
        update = _scaled_node(node, f * lone.get("peak_ratio", 1.0),
                              f * lone.get("mem_bw_ratio", 1.0))
        update.update(cores=max(1, math.ceil(node.cores * f)), processes_per_node=ranks)
        if "op_overhead_us" in lone:
            update["op_overhead_us"] = lone["op_overhead_us"]
        return cluster.model_copy(update={"node": node.model_copy(update=update)})
    over = (occupancy or {}).get("oversubscribed")
    ic = cluster.interconnect
    if ranks > node.cores and over and isinstance(ic, SwitchedInterconnect):
        intra = ic.intra_node.model_copy(update={
            "latency_us": over["intra_node_latency_us"], "bw_GBps": over["intra_node_bw_GBps"]})
        share = 2.0 * over.get("compute_share", 0.5)
        # a process's fixed costs stretch with its share of a core as its rates do (the
        # simulator stretches them by processes / cores, the fair share)
        update = _scaled_node(node, share, share) | {"op_overhead_us":
                                                      node.op_overhead_us / share}
        return cluster.model_copy(update={
            "node": node.model_copy(update=update),
            "interconnect": ic.model_copy(update={"intra_node": intra})})
    return cluster


def job_on_one_node(
    cluster: ClusterSpec, measured: Measured, occupancy: dict[str, Any] | None = None,
    stack: StackSpec | None = None,
) -> Job:
    """The measured run as a job with all its ranks on one node of ``cluster`` (on
    ``stack``, the ideal one when None).

    Raises:
        SpecError: the run does not fit the cluster.
    """
    ranks = measured.layout.world
    layout = measured.layout.model_copy(update={"processes_per_node": ranks,
                                                "job_shape": None})
    return make_job(occupied_cluster(cluster, ranks, occupancy), measured.model,
                    measured.train, layout, stack)


@dataclass(frozen=True)
class Row:
    """One run: measured and predicted step time and breakdown."""

    label: str
    model: str
    ranks: int
    tp: int
    pp: int
    dp: int
    micro_batch: int
    global_batch: int
    measured_step_s: float
    predicted_step_s: float
    measured_breakdown_s: dict[str, float]
    predicted_breakdown_s: dict[str, float]
    steps_timed: int
    measured_spread: float
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> float:
        """Relative error of the predicted step time: predicted / measured - 1."""
        return self.predicted_step_s / self.measured_step_s - 1.0

    @property
    def breakdown_error_s(self) -> dict[str, float]:
        """Predicted minus measured seconds of each breakdown term. The trainer's terms are
        the mean over ranks, the simulator's those of its critical stage, so with pipeline
        stages of unequal work they split the same step differently (compute vs bubble)."""
        return {k: self.predicted_breakdown_s[k] - self.measured_breakdown_s[k]
                for k in BREAKDOWN_KEYS}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["error"] = self.error
        out["breakdown_error_s"] = self.breakdown_error_s
        return out


def run_label(m: Measured) -> str:
    """The measured run's :func:`~fugaku_sim.calibrate.runs.layout_label` (as validate
    labels the run it started)."""
    lay, t = m.layout, m.train
    return layout_label(m.model.name, lay.tp, lay.pp, lay.dp, t.micro_batch, t.zero_stage,
                        t.recompute, t.recompute_stages, t.overlap_grad_reduce,
                        lay.sequence_parallel)


def compare_run(cluster: ClusterSpec, measured: Measured, mode: str = "fast",
                occupancy: dict[str, Any] | None = None, stack: StackSpec | None = None) -> Row:
    """Predict ``measured``'s job on ``cluster`` (and ``stack``) and pair the two."""
    from fugaku_sim.sim.predict import predict

    job = job_on_one_node(cluster, measured, occupancy, stack)
    pred = predict(job, mode=mode)  # type: ignore[arg-type]
    data = pred.to_json()
    lay = measured.layout
    return Row(
        label=run_label(measured), model=measured.model.name, ranks=lay.world,
        tp=lay.tp, pp=lay.pp, dp=lay.dp, micro_batch=measured.train.micro_batch,
        global_batch=measured.train.global_batch, measured_step_s=measured.step_time_s,
        predicted_step_s=float(data["step_time_s"]),
        measured_breakdown_s=dict(measured.breakdown_s),
        predicted_breakdown_s={k: float(data["breakdown_s"].get(k, 0.0)) for k in BREAKDOWN_KEYS},
        steps_timed=measured.steps_timed, measured_spread=measured.step_time_spread,
        source=measured.source,
        extra={"mfu_predicted": data.get("mfu"), "critical_stage": data.get("critical_stage"),
               "measured_step_time_stats": measured.step_time_stats,
               "foreign_cpu_share": measured.machine.get("foreign_cpu_share"),
               # the machine's speed at the run over its speed at the calibration (probe.py)
               "machine_speed": machine_speed((occupancy or {}).get("speed_probe_s"),
                                              measured.machine.get("speed_probe_s"))},
    )


def fastest_agreement(rows: list[Row], key: str) -> list[dict[str, Any]]:
    """For each group of rows (``key`` = ``model`` or ``model+ranks``) with two or more runs
    at one global batch: the predicted-fastest and measured-fastest run and whether they
    agree, with the measured margin of the winner over the runner-up."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        k = (r.model, r.global_batch) + ((r.ranks,) if key == "model+ranks" else ())
        groups.setdefault(k, []).append(r)
    out = []
    for k, group in sorted(groups.items()):
        if len(group) < 2:
            continue
        meas = sorted(group, key=lambda r: r.measured_step_s)
        pred = min(group, key=lambda r: r.predicted_step_s)
        margin = meas[1].measured_step_s / meas[0].measured_step_s - 1.0
        out.append({"group": " ".join(str(x) for x in k), "runs": len(group),
                    "measured_fastest": meas[0].label, "predicted_fastest": pred.label,
                    "agree": meas[0].label == pred.label, "measured_margin": margin})
    return out


def summarize_rows(rows: list[Row]) -> dict[str, Any]:
    """Median and worst absolute step-time error, and fastest-layout agreement."""
    if not rows:
        raise UserError("validate: no runs to compare")
    errs = [abs(r.error) for r in rows]
    worst = max(rows, key=lambda r: abs(r.error))
    by_model = fastest_agreement(rows, "model")
    by_ranks = fastest_agreement(rows, "model+ranks")
    quiet = [abs(r.error) for r in rows if is_quiet(r.extra.get("foreign_cpu_share"))]
    pass_spreads = [s for r in rows
                    if (s := r.extra.get("measured_step_time_stats", {}).get("pass_spread"))
                    is not None]
    speeds = [s for r in rows if (s := r.extra.get("machine_speed")) is not None]
    floor = [abs(r.predicted_step_s / p10 - 1.0) for r in rows
             if (p10 := r.extra.get("measured_step_time_stats", {}).get("p10"))]
    return {
        "runs": len(rows),
        "median_abs_error": statistics.median(errs),
        "mean_abs_error": statistics.fmean(errs),
        "worst_abs_error": abs(worst.error),
        "worst_run": worst.label,
        "all_finite": all(math.isfinite(r.error) for r in rows),
        "fastest_by_model": by_model,
        "fastest_by_model_and_ranks": by_ranks,
        "fastest_agreed": all(g["agree"] for g in by_model) if by_model else None,
        # the same figures over the runs other work left alone (contention.py)
        "quiet_share_limit": QUIET_SHARE,
        "contended_runs": len(rows) - len(quiet),
        "median_abs_error_quiet": statistics.median(quiet) if quiet else None,
        "worst_abs_error_quiet": max(quiet) if quiet else None,
        # how far one run's passes (validate --repeats) disagree: the measurement's own noise
        "median_pass_spread": statistics.median(pass_spreads) if pass_spreads else None,
        "worst_pass_spread": max(pass_spreads) if pass_spreads else None,
        # the machine's speed at the runs over its speed at the calibration (probe.py)
        "machine_speed_median": statistics.median(speeds) if speeds else None,
        "machine_speed_range": [min(speeds), max(speeds)] if speeds else None,
        # the same errors against each run's undisturbed steps (its 10th-percentile step,
        # tenth_percentile): what is left when the neighbours' bursts are left out
        "median_abs_error_p10": statistics.median(floor) if floor else None,
        "worst_abs_error_p10": max(floor) if floor else None,
    }
