"""Fit a software stack's free parameters to measured runs.

The model: each run's step time is the simulator's fast-mode prediction of its job on the
stack (:mod:`fugaku_sim.spec.stack`). The fit minimises a robust loss of the log step-time
residuals, ln(predicted / measured) (``scipy.optimize.least_squares``, soft-L1 with a 10%
scale: a run off by more than ~10% weighs linearly, not quadratically, so a few odd runs
cannot drag the rest), over the natural logarithms of the free parameters (each stays
positive; the fit's covariance is that of the logs).

Speed. A run's step time is piecewise linear in the *natural coordinates* of the stack: the
inverse of each efficiency (a GEMM at efficiency g takes 1/g of the time) and each overhead
itself. Each run is simulated once per outer iteration, with its derivatives (from the same
run: :func:`fugaku_sim.sim.perturb.step_with_gradient`), and the fit runs on the linear model
in those coordinates; the runs are simulated again at the new parameters until the exact
times agree with the linear model (two or three iterations). The placed job of each run
(:func:`fugaku_sim.sim.predict.prepare`) is built once.

Conditions. A run's ``cond_<name>`` columns may scale parameters: ``--condition-factor
allocator=tcmalloc:kernel_overhead_us`` frees one more parameter, the factor by which runs
with ``cond_allocator=tcmalloc`` have a different kernel overhead. A stack is written at the
reference conditions (runs without the condition); the factors are in its provenance.

Identifiability: the Jacobian of the residuals with respect to the free parameters is checked
before fitting; a rank-deficient one (or fewer runs than parameters) is an error naming the
parameters that cannot be told apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fugaku_sim.calibrate.measured import MeasuredRun, _field_text, job_of
from fugaku_sim.errors import UserError
from fugaku_sim.sim.perturb import step_with_gradient
from fugaku_sim.sim.predict import Setup, prepare
from fugaku_sim.spec.cluster import ClusterSpec
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.stack import EFFICIENCIES, FITTABLE, StackSpec, stack_value, with_values

#: starting values of overheads that are 0 in the base stack (a log cannot start at 0)
START_OVERHEAD = {"kernel_overhead_us": 10.0, "step_overhead_s": 0.1,
                  "micro_batch_overhead_s": 0.01}

#: bounds of every fitted parameter (natural units): wide enough never to bind in earnest
BOUNDS = (1e-6, 1e4)

SOFT_L1_SCALE = 0.1  # residuals beyond ~10% weigh linearly
Z90 = 1.6448536269514722  # two-sided 90% (5% in each tail) of the standard normal
Z80 = 1.2815515655446004  # p10 / p90 of the standard normal


@dataclass(frozen=True)
class ConditionFactor:
    """A factor on parameter ``path`` for runs whose condition ``name`` is ``value``."""

    name: str
    value: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.path}@{self.name}={self.value}"

    def applies(self, run: MeasuredRun) -> bool:
        """Whether ``run`` has the condition: a ``cond_<name>`` column, or a column of the
        runs format itself (``processes_per_node=4``, ``framework=megatron``)."""
        if self.name in run.conditions:
            return run.conditions[self.name] == self.value
        if self.name in type(run).model_fields and self.name != "conditions":
            return _field_text(getattr(run, self.name)) == self.value
        return False


def parse_condition_factor(text: str) -> list[ConditionFactor]:
    """``allocator=tcmalloc:kernel_overhead_us,nongemm_efficiency`` -> factors.

    Raises:
        UserError: not of that form, or a parameter that cannot be fitted.
    """
    cond, sep, paths = text.partition(":")
    name, eq, value = cond.partition("=")
    if not (sep and eq and name and value and paths):
        raise UserError(f"--condition-factor: {text!r} is not NAME=VALUE:PARAMETER[,PARAMETER]")
    out = []
    for path in paths.split(","):
        if path not in FITTABLE:
            raise UserError(f"--condition-factor: {path!r} is not a fittable parameter "
                            f"({', '.join(FITTABLE)})")
        out.append(ConditionFactor(name.removeprefix("cond_"), value, path))
    return out


@dataclass
class FitRow:
    """One run in the fit: its job on the base stack, its placed setup, its measured time."""

    run: MeasuredRun
    job: Job
    setup: Setup
    measured_s: float


@dataclass(frozen=True)
class Linearised:
    """A run's step time near a point: t0 plus, per free path, a (coordinate - coordinate0)
    in the natural coordinates (see the module docstring)."""

    t0: float
    coord0: np.ndarray  # natural coordinate of each free path at the point
    slope: np.ndarray  # d step / d coordinate


class Problem:
    """The free parameters, condition factors and rows of a fit, and its linear model."""

    def __init__(self, rows: list[FitRow], base: StackSpec, free: Sequence[str],
                 factors: Sequence[ConditionFactor] = ()) -> None:
        self.rows, self.base, self.free = rows, base, list(free)
        self.factors = list(factors)
        self.labels = self.free + [f.label for f in self.factors]
        self.sign = np.array([-1.0 if p in EFFICIENCIES else 1.0 for p in self.free])
        # M[i]: (free paths x theta) map from theta to the row's log parameter values
        k, n = len(self.free), len(self.labels)
        self.maps = np.zeros((len(rows), k, n))
        for i, row in enumerate(rows):
            self.maps[i, :, :k] = np.eye(k)
            for j, f in enumerate(self.factors):
                if f.applies(row.run):
                    self.maps[i, self.free.index(f.path), k + j] = 1.0

    def start(self) -> np.ndarray:
        """Starting point: the base stack's free values (overheads at 0 start small), no
        condition factor."""
        vals = [stack_value(self.base, p) or START_OVERHEAD.get(p, 1.0) for p in self.free]
        return np.concatenate([np.log(vals), np.zeros(len(self.factors))])

    def row_log_values(self, theta: np.ndarray) -> np.ndarray:
        """(rows, free paths) natural logs of each row's parameter values at ``theta``."""
        return np.einsum("ikn,n->ik", self.maps, theta)

    def row_stack(self, i: int, theta: np.ndarray) -> StackSpec:
        """The stack row ``i`` runs on at ``theta`` (unvalidated floats)."""
        logs = self.row_log_values(theta)[i]
        return with_values(self.base, {p: float(math.exp(v)) for p, v in zip(self.free, logs)})

    def linearise(self, theta: np.ndarray, rows: Sequence[int] | None = None,
                  progress: Callable[[int], None] | None = None) -> list[Linearised]:
        """Simulate each row at ``theta`` (its time and derivatives) -> its linear model."""
        out = []
        logs = self.row_log_values(theta)
        for n, i in enumerate(range(len(self.rows)) if rows is None else rows):
            row = self.rows[i]
            job = replace(row.job, stack=self.row_stack(i, theta))
            grad = step_with_gradient(job, row.setup, self.free)
            coord = np.exp(self.sign * logs[i])
            d_log = np.array([grad.d_step_d_log[p] for p in self.free])
            out.append(Linearised(grad.step_time_s, coord, d_log / (self.sign * coord)))
            if progress:
                progress(n + 1)
        return out

    def model(self, lin: list[Linearised], theta: np.ndarray, rows: Sequence[int]
              ) -> tuple[np.ndarray, np.ndarray]:
        """(predicted step times, d ln(step) / d theta) of ``rows`` under the linear model."""
        logs = self.row_log_values(theta)
        times = np.empty(len(rows))
        jac = np.empty((len(rows), len(self.labels)))
        for n, i in enumerate(rows):
            L = lin[i]
            coord = np.exp(self.sign * logs[i])
            t = L.t0 + float(L.slope @ (coord - L.coord0))
            times[n] = t
            d_logv = L.slope * self.sign * coord  # d t / d ln(value) of each free path
            jac[n] = (d_logv @ self.maps[i]) / t
        return times, jac


def check_identifiable(problem: Problem, lin: list[Linearised], theta: np.ndarray,
                       rows: Sequence[int]) -> None:
    """Refuse a fit whose parameters the runs cannot tell apart.

    Raises:
        UserError: fewer runs than free parameters, or a rank-deficient Jacobian, naming the
            parameters involved.
    """
    labels = problem.labels
    if len(rows) < len(labels):
        raise UserError(f"calibrate: {len(rows)} runs cannot identify {len(labels)} free "
                        f"parameters ({', '.join(labels)}); free fewer with --free")
    _, jac = problem.model(lin, theta, rows)
    scale = np.linalg.norm(jac, axis=0)
    dead = [lab for lab, s in zip(labels, scale) if s < 1e-12]
    if dead:
        raise UserError(f"calibrate: no run depends on {', '.join(dead)}; "
                        "fix it (leave it out of --free) or add runs that use it")
    _, sv, vt = np.linalg.svd(jac / scale, full_matrices=False)
    if sv[-1] < 1e-6 * sv[0]:
        null = np.abs(vt[-1])
        involved = [lab for lab, w in zip(labels, null) if w > 0.1]
        raise UserError(f"calibrate: the runs cannot tell apart {', '.join(involved)} "
                        "(rank-deficient fit); free fewer with --free or add runs that "
                        "separate them")


@dataclass
class FitResult:
    """The fitted parameters, their covariance and the per-row figures."""

    theta: np.ndarray
    covariance: np.ndarray
    predicted_s: np.ndarray
    residual_scale: float  # weighted standard deviation of the in-sample log residuals
    iterations: int
    lin: list[Linearised] = field(repr=False)
    #: free efficiencies at their cap at the fit, bounded from below only (:func:`capped_labels`)
    capped: list[str] = field(default_factory=list)


def _robust_cost(residuals: np.ndarray) -> float:
    """The soft-L1 cost of log residuals (what the solver minimises)."""
    z = (residuals / SOFT_L1_SCALE) ** 2
    return float(np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))


def _robust_scale(residuals: np.ndarray) -> float:
    """1.4826 x median absolute deviation from 0 (the standard deviation for normal data)."""
    return float(1.4826 * np.median(np.abs(residuals))) if len(residuals) else 0.0


def _solve(problem: Problem, lin: list[Linearised], theta0: np.ndarray, rows: Sequence[int],
           measured: np.ndarray) -> np.ndarray:
    from scipy.optimize import least_squares

    log_meas = np.log(measured)

    def fun(theta: np.ndarray) -> np.ndarray:
        t, _ = problem.model(lin, theta, rows)
        return np.log(np.maximum(t, 1e-300)) - log_meas

    def jac(theta: np.ndarray) -> np.ndarray:
        return problem.model(lin, theta, rows)[1]

    k = len(problem.free)
    lo = np.concatenate([np.full(k, math.log(BOUNDS[0])), np.full(len(problem.factors), -20.0)])
    hi = np.concatenate([np.full(k, math.log(BOUNDS[1])), np.full(len(problem.factors), 20.0)])
    x0 = np.clip(theta0, lo + 1e-9, hi - 1e-9)
    sol = least_squares(fun, x0, jac=jac, bounds=(lo, hi), loss="soft_l1",
                        f_scale=SOFT_L1_SCALE, x_scale="jac", max_nfev=500)
    return np.asarray(sol.x)


def covariance(problem: Problem, lin: list[Linearised], theta: np.ndarray,
               rows: Sequence[int], measured: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariance of theta at the fit (robust-weighted Gauss-Newton: the soft-L1 loss's
    weights, the weighted residual variance over the degrees of freedom) and that residual
    standard deviation (of ln step time; 0 when the rows leave no degree of freedom)."""
    t, jac = problem.model(lin, theta, rows)
    r = np.log(t) - np.log(measured)
    z = (r / SOFT_L1_SCALE) ** 2
    w = 1.0 / np.sqrt(1.0 + z)  # soft_l1: rho'(z) = (1 + z)^-1/2
    jw = jac * np.sqrt(w)[:, None]
    dof = len(rows) - len(theta)
    s2 = float(np.sum(w * r * r) / dof) if dof > 0 else 0.0
    cov = np.linalg.pinv(jw.T @ jw) * s2
    return cov, math.sqrt(s2)


def fit_rows(problem: Problem, rows: Sequence[int] | None = None,
             theta0: np.ndarray | None = None, lin: list[Linearised] | None = None,
             max_outer: int = 6, tol: float = 1e-4,
             progress: Callable[[str], None] | None = None) -> FitResult:
    """Fit ``problem``'s parameters to ``rows`` (all when None): linearise, solve, repeat
    until the exact times at the solution agree with the linear model to ``tol``.

    Raises:
        UserError: the parameters are not identifiable from these rows.
    """
    rows = list(range(len(problem.rows))) if rows is None else list(rows)
    measured = np.array([problem.rows[i].measured_s for i in rows])
    theta = problem.start() if theta0 is None else theta0
    lin = lin or problem.linearise(theta)
    check_identifiable(problem, lin, theta, rows)
    best: tuple[float, np.ndarray, list[Linearised]] | None = None
    for outer in range(1, max_outer + 1):
        new = _solve(problem, lin, theta, rows, measured)
        predicted, _ = problem.model(lin, new, rows)
        lin = problem.linearise(new)
        exact = np.array([lin[i].t0 for i in rows])
        theta = new
        gap = float(np.max(np.abs(np.log(exact / predicted))))
        if progress:
            progress(f"iteration {outer}: linear model within {gap:.2e} of the simulator")
        cost = _robust_cost(np.log(exact / measured))
        if best is None or cost < best[0]:
            best = (cost, theta, lin)
        if gap < tol:
            break
    # a critical path that switches between iterations can make them cycle: keep the point
    # whose exact times fit best
    assert best is not None
    _, theta, lin = best
    past_cap = [label for label in flat_labels(problem, lin, theta, rows) if label in CAPPED]
    for label in past_cap:
        theta = _edge_of_flat(problem, theta, rows, problem.labels.index(label))
    if past_cap:
        lin = problem.linearise(theta)
    cov, scale = covariance(problem, lin, theta, rows, measured)
    every = np.array([L.t0 for L in lin])  # every row's exact time at the fit
    capped = capped_labels(problem, theta, rows)
    if capped:
        # at the cap the runs' derivatives vanish (every GEMM at the peak) and the covariance
        # says nothing of how far below it the value may lie: take it 1% below, where they
        # depend on it again (intervals90 keeps its low side)
        below = theta.copy()
        for label in capped:
            below[problem.labels.index(label)] -= CAP_PROBE
        cov, _ = covariance(problem, problem.linearise(below), below, rows, measured)
    return FitResult(theta, cov, every, scale, outer, lin, capped)


FLAT_SENSITIVITY = 1e-9  # |d ln(step) / d ln(parameter)| below this on every run: flat
CAP_PROBE = math.log(1.01)  # an efficiency 1% higher that changes no run: at its cap
#: the parameters the stack caps (StackSpec.gemm_efficiency_at: no GEMM beats the peak)
CAPPED = ("gemm_efficiency_scale",)


def flat_labels(problem: Problem, lin: list[Linearised], theta: np.ndarray,
                rows: Sequence[int]) -> list[str]:
    """The free parameters that no fitted run depends on at ``theta``: the fit pushed them
    past a bound of the model (a GEMM efficiency scale beyond the point where every GEMM
    of the runs reaches the peak, capped at 1)."""
    _, jac = problem.model(lin, theta, rows)
    return [lab for lab, col in zip(problem.labels, np.abs(jac).max(axis=0))
            if col < FLAT_SENSITIVITY]


def _times(problem: Problem, theta: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """The rows' simulated step times at ``theta`` (as :meth:`Problem.linearise` simulates
    them, without derivatives)."""
    return np.array([step_with_gradient(replace(problem.rows[i].job,
                                                stack=problem.row_stack(i, theta)),
                                        problem.rows[i].setup, []).step_time_s for i in rows])


def capped_labels(problem: Problem, theta: np.ndarray, rows: Sequence[int]) -> list[str]:
    """The free parameters at their cap (:data:`CAPPED`): 1% more changes none of the fitted
    runs (each run simulated again). The runs bound such a value from below only: every GEMM they
    time reaches the peak there, so their interval is one-sided (:func:`intervals90`)."""
    out: list[str] = []
    probe = [j for j, path in enumerate(problem.free) if path in CAPPED]
    if not probe or not _may_reach_peak(problem, theta, rows):
        return out
    base = _times(problem, theta, rows)
    for j in probe:
        up = theta.copy()
        up[j] += CAP_PROBE
        if np.all(np.abs(_times(problem, up, rows) / base - 1.0) < FLAT_SENSITIVITY):
            out.append(problem.labels[j])
    return out


def _may_reach_peak(problem: Problem, theta: np.ndarray, rows: Sequence[int]) -> bool:
    """Whether every row's best GEMM could be at the peak: its efficiency curve's highest
    point times the row's GEMM scale reaches 1 (else no simulation is needed to know that
    the scale is not at its cap)."""
    for i in rows:
        stack = problem.row_stack(i, theta)
        curve = stack.gemm_efficiency or problem.rows[i].job.cluster.node.gemm_efficiency
        if stack.gemm_efficiency_scale * max(p.efficiency for p in curve) < 1.0:
            return False
    return True


def _edge_of_flat(problem: Problem, theta: np.ndarray, rows: Sequence[int], j: int,
                  steps: int = 12) -> np.ndarray:
    """``theta`` with free parameter ``j`` (one of :data:`CAPPED`), past its cap, moved down
    to where the runs start to depend on it (bisection in its log between the start, or the
    lower bound, and the fit, simulating the runs at each point): the least the runs say of
    it, the value a stack should carry. The other parameters stay where the fit put them."""
    at_fit = _times(problem, theta, rows)

    def flat_at(x: float) -> bool:
        trial = theta.copy()
        trial[j] = x
        return bool(np.all(np.abs(_times(problem, trial, rows) / at_fit - 1.0)
                           < FLAT_SENSITIVITY))

    hi = float(theta[j])
    lo = min(float(problem.start()[j]), hi)
    if flat_at(lo):
        lo = math.log(BOUNDS[0])
        if flat_at(lo):
            return theta
    for _ in range(steps):  # the same times at hi, not at lo
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if flat_at(mid) else (mid, hi)
    out = theta.copy()
    out[j] = hi
    return out


@dataclass(frozen=True)
class LeaveOneOut:
    """Each row predicted by a fit to the others: time, p10 and p90, and the summary."""

    predicted_s: np.ndarray
    p10_s: np.ndarray
    p90_s: np.ndarray
    errors: np.ndarray  # predicted / measured - 1

    def summary(self, measured: np.ndarray) -> dict[str, float]:
        inside = (measured >= self.p10_s) & (measured <= self.p90_s)
        abs_err = np.abs(self.errors)
        return {"median_abs_error": float(np.median(abs_err)),
                "worst_abs_error": float(np.max(abs_err)),
                "mean_abs_error": float(np.mean(abs_err)),
                "coverage_p10_p90": float(np.mean(inside))}


def leave_one_out(problem: Problem, fit: FitResult, exact: bool = False,
                  progress: Callable[[int], None] | None = None) -> LeaveOneOut:
    """Refit without each row in turn (on the linear models at the full fit, from its
    parameters) and predict the left-out row at the refitted parameters: by its linear
    model (exact while its critical path stays; ``exact`` simulates it again). Its p10-p90
    is the normal interval of ln(step) with the refit's parameter covariance and the
    refit's robust residual scatter (the model's own error)."""
    n = len(problem.rows)
    pred, lo, hi = np.empty(n), np.empty(n), np.empty(n)
    all_rows = list(range(n))
    for i in all_rows:
        others = all_rows[:i] + all_rows[i + 1:]
        measured = np.array([problem.rows[j].measured_s for j in others])
        theta = _solve(problem, fit.lin, fit.theta, others, measured)
        cov, scale = covariance(problem, fit.lin, theta, others, measured)
        (linear,), jac = problem.model(fit.lin, theta, [i])
        t = problem.linearise(theta, rows=[i])[0].t0 if exact else float(linear)
        sd = math.sqrt(float(jac[0] @ cov @ jac[0]) + scale * scale)
        pred[i], lo[i], hi[i] = t, t * math.exp(-Z80 * sd), t * math.exp(Z80 * sd)
        if progress:
            progress(i + 1)
    measured = np.array([r.measured_s for r in problem.rows])
    return LeaveOneOut(pred, lo, hi, pred / measured - 1.0)


def hold_out(problem: Problem, fit_rows_: Sequence[int], progress: Callable[[str], None] | None
             = None) -> tuple[FitResult, LeaveOneOut]:
    """Fit on ``fit_rows_`` only and predict every row from that fit (the fitted ones
    in-sample, the others held out), each with its p10-p90 (parameter covariance and the
    fit's residual scatter)."""
    fit = fit_rows(problem, fit_rows_, progress=progress)
    n = len(problem.rows)
    _, jac = problem.model(fit.lin, fit.theta, list(range(n)))
    pred = np.array([L.t0 for L in fit.lin])
    sd = np.sqrt(np.einsum("ij,jk,ik->i", jac, fit.covariance, jac) + fit.residual_scale ** 2)
    measured = np.array([r.measured_s for r in problem.rows])
    out = LeaveOneOut(pred, pred * np.exp(-Z80 * sd), pred * np.exp(Z80 * sd),
                      pred / measured - 1.0)
    return fit, out


def prepare_rows(runs: Sequence[MeasuredRun], base: StackSpec,
                 cluster_for: Callable[[MeasuredRun], ClusterSpec] | None = None
                 ) -> list[FitRow]:
    """Each run's job on ``base`` (on ``cluster_for(run)``, else the run's own profile) and
    its placed setup (built once)."""
    out = []
    for run in runs:
        job = job_of(run, cluster_for(run) if cluster_for else None, stack=base)
        assert run.step_time_s is not None  # selected rows have a time
        out.append(FitRow(run, job, prepare(job), float(run.step_time_s)))
    return out


def intervals90(problem: Problem, fit: FitResult) -> dict[str, tuple[float, float, float]]:
    """(value, low, high) of each free parameter and condition factor: exp(theta +- z sd).

    An efficiency at its cap (``fit.capped``) is bounded from below only: its interval runs
    from the covariance's low end to the fit's upper bound."""
    sd = np.sqrt(np.maximum(np.diag(fit.covariance), 0.0))
    half = np.minimum(Z90 * sd, 700.0 - np.abs(fit.theta))  # exp stays finite
    out = {lab: (math.exp(t), math.exp(t - h), math.exp(t + h))
           for lab, t, h in zip(problem.labels, fit.theta, half)}
    for lab in fit.capped:
        value, low, _ = out[lab]
        out[lab] = (value, low, BOUNDS[1])
    return out


PINNED_FACTOR = 1e3  # a 90% interval wider than this factor either way: not pinned down


def check_pinned(problem: Problem, fit: FitResult) -> None:
    """Refuse a fit whose runs leave a parameter practically free: its 90% interval spans
    more than :data:`PINNED_FACTOR` either way of the value (the runs barely depend on it,
    or only through a combination with another parameter).

    Raises:
        UserError: naming those parameters.
    """
    sd = np.sqrt(np.maximum(np.diag(fit.covariance), 0.0))
    loose = [lab for lab, s in zip(problem.labels, sd)
             if not Z90 * s <= math.log(PINNED_FACTOR)]  # NaN counts as loose
    if loose:
        raise UserError(f"calibrate: the runs do not pin down {', '.join(loose)} (90% interval "
                        f"wider than a factor of {PINNED_FACTOR:g} either way); leave "
                        f"{'it' if len(loose) == 1 else 'them'} out of --free or add runs "
                        "that depend on it")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def summary_dict(problem: Problem, fit: FitResult, loo: LeaveOneOut) -> dict[str, Any]:
    """The fit's statistics for the stack's provenance and the JSON output."""
    measured = np.array([r.measured_s for r in problem.rows])
    in_sample = fit.predicted_s / measured - 1.0
    return {"runs": len(problem.rows), "parameters": len(problem.labels),
            "iterations": fit.iterations,
            "in_sample_median_abs_error": float(np.median(np.abs(in_sample))),
            "in_sample_worst_abs_error": float(np.max(np.abs(in_sample))),
            "log_residual_scale": fit.residual_scale,
            "leave_one_out": loo.summary(measured)}
