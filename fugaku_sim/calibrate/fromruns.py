"""``calibrate --from-runs``: measured runs in, a fitted software stack out.

Inputs are runs files (CSV, :mod:`fugaku_sim.calibrate.measured`) or finished runs of this
project's trainer (a ``fugaku-sim train --out`` folder, its ``summary.json`` or its
``metrics.jsonl``), imported on the fly (:mod:`fugaku_sim.calibrate.trainer_log`).

Which rows are fitted: representable, ``status`` ok, a step time of a quality in
``qualities`` (measured and derived by default: a first step includes the warm-up, an
estimate is not a measurement, a withdrawn figure was withdrawn), not a ``duplicate_of``
another row (its twin is fitted), no ``fit_exclude`` reason (unless asked), and of the
cluster named by ``--cluster``. Every other row is listed with the reason it was left out.

The fit (:mod:`fugaku_sim.calibrate.stackfit`) reports each row measured / fitted /
residual, leave-one-out error and p10-p90 coverage (or, with ``fit_only``, the error on the
held-out rows), each parameter with its 90% interval; the stack written carries the fitted
values, their intervals, the scatter of the leave-one-out (or held-out) residuals as its
model error, and its provenance.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim import __version__
from fugaku_sim.calibrate.measured import MeasuredRun, read_runs
from fugaku_sim.calibrate.stackfit import (
    ConditionFactor,
    FitResult,
    LeaveOneOut,
    Problem,
    _robust_scale,
    check_pinned,
    fit_rows,
    hold_out,
    intervals90,
    leave_one_out,
    prepare_rows,
)
from fugaku_sim.errors import UserError
from fugaku_sim.spec import ClusterSpec
from fugaku_sim.spec.load import dump_yaml, resolve_cluster_path
from fugaku_sim.spec.ranges import Interval
from fugaku_sim.spec.stack import (
    DEFAULT_STACK,
    FITTABLE,
    StackProvenance,
    StackSpec,
    with_values,
)

DEFAULT_QUALITIES = ("measured", "derived")
#: the parameters freed by default (with the collectives the runs use, see default_free)
DEFAULT_FREE = ("gemm_efficiency_scale", "nongemm_efficiency", "kernel_overhead_us",
                "step_overhead_s")


@dataclass
class Inputs:
    """The runs read and where from (each source's path and sha256)."""

    runs: list[MeasuredRun]
    files: list[dict[str, str]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_inputs(paths: Sequence[Path], cluster_ref: str) -> Inputs:
    """Runs files and trainer run folders -> rows (trainer runs on ``cluster_ref``).

    Raises:
        UserError: a missing path, a malformed runs file (file:line:column), a run folder
            without its summary.
    """
    from fugaku_sim.calibrate.trainer_log import run_from_trainer

    runs: list[MeasuredRun] = []
    files: list[dict[str, str]] = []
    for path in paths:
        if not path.exists():
            raise UserError(f"--from-runs: {path}: no such file or folder")
        if path.is_file() and path.suffix == ".csv":
            runs += read_runs(path)
            files.append({"path": str(path), "sha256": _sha256(path)})
            continue
        run_dir = path.parent if path.is_file() else path
        runs.append(run_from_trainer(run_dir, cluster=cluster_ref))
        for name in ("summary.json", "metrics.jsonl"):
            if (run_dir / name).is_file():
                files.append({"path": str(run_dir / name), "sha256": _sha256(run_dir / name)})
    ids = [r.id for r in runs]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UserError(f"--from-runs: run id {twice[0]!r} appears in more than one input")
    return Inputs(runs, files)


def select_rows(runs: Sequence[MeasuredRun], cluster: ClusterSpec,
                qualities: Sequence[str] = DEFAULT_QUALITIES, include_excluded: bool = False
                ) -> tuple[list[MeasuredRun], dict[str, str]]:
    """(rows to fit, {id: why left out} for the others) (see the module docstring)."""
    from fugaku_sim.spec import load_cluster

    names: dict[str, str] = {}
    keep, left = [], {}
    for r in runs:
        if r.cluster not in names:
            try:
                names[r.cluster] = load_cluster(r.cluster).name
            except UserError:
                names[r.cluster] = r.cluster
        why = None
        if not r.representable:
            why = f"not representable ({r.reason})"
        elif r.step_time_s is None or r.status != "ok":
            why = f"no step time (status {r.status})"
        elif r.time_quality not in qualities:
            why = f"time quality {r.time_quality}"
        elif r.duplicate_of:
            why = f"duplicate of {r.duplicate_of} (fitted once)"
        elif r.fit_exclude and not include_excluded:
            why = f"fit_exclude: {r.fit_exclude}"
        elif names[r.cluster] != cluster.name:
            why = f"ran on {names[r.cluster]}, not {cluster.name}"
        if why:
            left[r.id] = why
        else:
            keep.append(r)
    if not keep:
        raise UserError("--from-runs: no run to fit (every row was left out: "
                        f"{next(iter(left.values()), 'no rows')})")
    return keep, left


def default_free(rows: Sequence[MeasuredRun]) -> list[str]:
    """The default free parameters: GEMM and non-GEMM efficiency, kernel and step
    overhead, and the efficiency of each kind of collective the runs use."""
    free = list(DEFAULT_FREE)
    if any(r.tp > 1 or r.dp > 1 for r in rows):
        free.insert(3, "collective_efficiency.allreduce")
    if any(r.pp > 1 for r in rows):
        free.insert(4, "collective_efficiency.p2p")
    return free


def parse_free(text: str) -> list[str]:
    """``--free a,b`` -> paths (each fittable).

    Raises:
        UserError: an unknown parameter.
    """
    paths = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in paths if p not in FITTABLE]
    if bad or not paths:
        raise UserError(f"--free: {bad[0] if bad else repr(text)} is not a fittable "
                        f"parameter ({', '.join(FITTABLE)})")
    return paths


@dataclass
class FromRuns:
    """Everything a fit produced: the problem, the fit, the out-of-sample predictions."""

    problem: Problem
    fit: FitResult
    check: LeaveOneOut  # leave-one-out, or the held-out predictions with fit_only
    held_out: list[int]  # rows predicted out of sample (all, in leave-one-out)
    left_out: dict[str, str]
    files: list[dict[str, str]]
    mode: str  # "leave-one-out" or "held-out"
    extra: dict[str, Any] = field(default_factory=dict)

    def measured(self) -> np.ndarray:
        return np.array([r.measured_s for r in self.problem.rows])

    def summary(self) -> dict[str, Any]:
        """Fit statistics: in-sample and out-of-sample error, coverage, model error."""
        m = self.measured()
        rows = self.held_out
        err = self.check.errors[rows]
        inside = (m[rows] >= self.check.p10_s[rows]) & (m[rows] <= self.check.p90_s[rows])
        in_sample = self.fit.predicted_s / m - 1.0 if self.mode == "leave-one-out" else None
        return {
            "runs_fitted": len(self.problem.rows) - (len(rows) if self.mode == "held-out" else 0),
            "runs_checked": len(rows),
            "parameters": len(self.problem.labels),
            "mode": self.mode,
            "median_abs_error": float(np.median(np.abs(err))),
            "worst_abs_error": float(np.max(np.abs(err))),
            "worst_run": self.problem.rows[rows[int(np.argmax(np.abs(err)))]].run.id,
            "coverage_p10_p90": float(np.mean(inside)),
            "in_sample_median_abs_error": (None if in_sample is None
                                           else float(np.median(np.abs(in_sample)))),
            "log_residual_sigma": self.model_error(),
            "iterations": self.fit.iterations,
        }

    def model_error(self) -> float:
        """The stack's model error: scatter of ln(predicted / measured) out of sample
        (robust: 1.4826 x median absolute value), at least the fit's own."""
        r = np.log1p(self.check.errors[self.held_out])
        return max(_robust_scale(r), self.fit.residual_scale)


def hardware_of(cluster: ClusterSpec, occupancy: dict[str, Any] | None
                ) -> Callable[[MeasuredRun], ClusterSpec]:
    """The hardware each run saw: ``cluster``; for a run on one node, the node as a job of
    that many processes sees it (:func:`fugaku_sim.calibrate.compare.occupied_cluster`,
    with the calibrated ``occupancy``), as ``validate`` predicts it."""
    from fugaku_sim.calibrate.compare import occupied_cluster

    def for_run(run: MeasuredRun) -> ClusterSpec:
        if run.nodes == 1:
            return occupied_cluster(cluster, run.processes_per_node, occupancy)
        return cluster

    return for_run


def run_fit(inputs: Inputs, cluster: ClusterSpec, base: StackSpec, free: Sequence[str] | None,
            factors: Sequence[ConditionFactor], qualities: Sequence[str],
            include_excluded: bool, fit_only: Sequence[str] | None,
            progress: Callable[[str], None] | None = None,
            occupancy: dict[str, Any] | None = None) -> FromRuns:
    """Select, fit and check (see the module docstring).

    Raises:
        UserError: nothing to fit, an unknown ``fit_only`` id, unidentifiable parameters.
    """
    rows, left = select_rows(inputs.runs, cluster, qualities, include_excluded)
    free = list(free) if free else default_free(rows)
    for f in factors:
        if f.path not in free:
            raise UserError(f"--condition-factor: {f.path} is not free (add it to --free)")
        if not any(f.applies(r) for r in rows):
            raise UserError(f"--condition-factor: no fitted run has {f.name}={f.value}")
    if progress:
        progress(f"placing {len(rows)} runs")
    problem = Problem(prepare_rows(rows, base, hardware_of(cluster, occupancy)), base, free,
                      factors)
    ids = [r.id for r in rows]
    if fit_only:
        unknown = [i for i in fit_only if i not in ids]
        if unknown:
            raise UserError(f"--fit-only: {unknown[0]!r} is not a fitted run "
                            f"({left.get(unknown[0], 'no such id')})")
        chosen = [ids.index(i) for i in fit_only]
        fit, check = hold_out(problem, chosen, progress)
        check_pinned(problem, fit)
        held = [i for i in range(len(rows)) if i not in chosen]
        if not held:
            raise UserError("--fit-only: lists every run; nothing is left to check the fit on")
        return FromRuns(problem, fit, check, held, left, inputs.files, "held-out")
    fit = fit_rows(problem, progress=progress)
    check_pinned(problem, fit)
    if progress:
        progress("leave-one-out refits")
    check = leave_one_out(problem, fit)
    return FromRuns(problem, fit, check, list(range(len(rows))), left, inputs.files,
                    "leave-one-out")


def fitted_stack(result: FromRuns, base: StackSpec, name: str, description: str,
                 command: list[str]) -> StackSpec:
    """The stack the fit describes, at the reference conditions (no condition factor),
    with intervals, model error and provenance; validated."""
    problem, fit = result.problem, result.fit
    iv = intervals90(problem, fit)
    values = {p: iv[p][0] for p in problem.free}
    intervals = {p: Interval(low=iv[p][1], high=iv[p][2]) for p in problem.free}
    factors = {f.label: {"value": iv[f.label][0], "low": iv[f.label][1],
                         "high": iv[f.label][2]} for f in problem.factors}
    stats = result.summary() | {"condition_factors": factors, "arguments": command,
                                "one_sided": list(fit.capped)}
    prov = StackProvenance(
        method="calibrate --from-runs: robust least squares (soft-L1, 10%) on ln(step time) "
               "of the fast-mode simulation; 90% intervals from the robust-weighted covariance",
        tool_version=__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        runs_files=result.files, parameters=problem.labels,
        covariance=[[float(x) for x in row] for row in fit.covariance],
        statistics=stats, excluded=result.left_out)
    data = with_values(base, values).model_dump(mode="json")
    data.update(name=name, description=description, log_residual_sigma=result.model_error(),
                intervals={p: i.model_dump() for p, i in intervals.items()},
                provenance=prov.model_dump(mode="json"))
    return StackSpec.model_validate(data)


def stack_path(out: str) -> Path:
    """``NAME`` -> ``clusters/stacks/NAME.yaml`` (under the working folder, as calibrated
    profiles go to ``clusters/``); a path ending in .yaml (or with a folder) as given.

    Raises:
        UserError: the name of the default stack, which stays as shipped.
    """
    if out.endswith((".yaml", ".yml")) or "/" in out:
        return Path(out)
    if out == DEFAULT_STACK:
        raise UserError(f"--out: {DEFAULT_STACK!r} is the default stack; give the fit a name")
    return Path("clusters") / "stacks" / f"{out}.yaml"


def stack_yaml(stack: StackSpec, result: FromRuns, cluster_ref: str) -> str:
    """The stack file: a comment header (what was fitted, how well), then the YAML."""
    s = result.summary()
    lines = [
        f"# Software stack {stack.name}, fitted by `fugaku-sim calibrate --from-runs` "
        f"(fugaku-sim {__version__}) on {stack.provenance.date if stack.provenance else ''}.",
        f"# Hardware: {resolve_cluster_path(cluster_ref).name}. Runs: "
        + ", ".join(f"{Path(f['path']).name} (sha256 {f['sha256'][:12]})" for f in result.files)
        + ".",
        f"# {s['runs_fitted']} runs fitted, {len(result.left_out)} left out (provenance."
        "excluded says why); free: " + ", ".join(result.problem.labels) + ".",
        f"# {s['mode']}: median |error| {s['median_abs_error']:.1%}, worst "
        f"{s['worst_abs_error']:.1%} ({s['worst_run']}), p10-p90 coverage "
        f"{s['coverage_p10_p90']:.0%} over {s['runs_checked']} runs; model error "
        f"(log_residual_sigma) {s['log_residual_sigma']:.3f}.",
        "# Values at the reference conditions (runs with none of the condition factors);",
        "# intervals are 90%; provenance.covariance is that of the logs of the parameters.",
    ]
    return "\n".join(lines) + "\n" + dump_yaml(stack)


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
