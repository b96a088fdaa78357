"""Intervals on a prediction: p10/p50/p90 of step time and time to train, and how far each
uncertain input moves them.

The uncertain inputs:

- the cluster profile's assumed figures (its ``assumed:`` section), each somewhere in its
  range: triangular between ``low`` and ``high``, peaked at the profile's value;
- the software stack's fitted parameters: jointly normal in their logarithms with the fit's
  covariance (independent, from their 90% intervals, when the stack has no covariance);
- the stack's own model error: ln(measured / predicted) of runs the fit did not see scatter
  with standard deviation ``log_residual_sigma``.

Propagation (:func:`predict_intervals`). The step is simulated at each profile figure's
``low`` and ``high`` with everything else central; between those, its effect follows the
curve a + b / x + c x through the three points (exact when time goes as the figure's inverse,
an efficiency or a bandwidth, or as the figure, an overhead or a latency). The stack's parameters act through the
step's exact derivatives in their natural coordinates (:mod:`fugaku_sim.sim.perturb`), so
correlated parameters are drawn together. Effects add (the interactions between profile
figures are not simulated); the model error multiplies. Draws (256 by default, a fixed seed)
then give the quantiles, and each draw's time to train is costed with its own checkpoint
write rate and node MTBF. The test suite checks the quantiles against full simulations of
joint draws.

:func:`sensitivity` moves one input at a time to the ends of its range (a stack parameter
to the ends of its 90% interval, the model error to its 5% and 95% points) and ranks the
inputs by how far the time to train (else the step time) moves: the first to measure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fugaku_sim.errors import SpecError
from fugaku_sim.sim.distributions import Quantiles
from fugaku_sim.sim.perturb import step_with_gradient
from fugaku_sim.sim.predict import (
    Prediction,
    Setup,
    checkpoint_bytes,
    prepare,
    reprice,
    run_engine,
)
from fugaku_sim.sim.reliability import plan_failures
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.ranges import numeric_at, with_numbers
from fugaku_sim.spec.stack import EFFICIENCIES, FITTABLE, stack_value, with_values

Z90 = 1.6448536269514722  # the 5% and 95% points of the standard normal
DRAWS = 256
#: profile figures that only the campaign reads (start-up, checkpoint reads, queue waits)
CAMPAIGN_ONLY = "campaign."
#: profile sections whose figures change how collectives are priced: a new placed job
NETWORK = ("interconnect.", "allocation.")
#: what runs of a stack measure: where a stack's parameters come from
STACK_MEASURE = "short runs of the software on the machine (fugaku-sim calibrate --from-runs)"


@dataclass(frozen=True)
class Uncertain:
    """One uncertain input: where it lives, its central value and range, what measures it."""

    name: str  # ``profile:<path>``, ``stack:<path>`` or ``stack:model_error``
    value: float
    low: float
    high: float
    measure: str

    label: str = ""  # for a reader: ``GEMM efficiency at min dim 1024``

    @property
    def source(self) -> str:
        return self.name.partition(":")[0]

    @property
    def path(self) -> str:
        return self.name.partition(":")[2]


def profile_inputs(job: Job) -> list[Uncertain]:
    """The profile's assumed figures that a prediction reads (campaign-only ones left out)."""
    c = job.cluster
    return [Uncertain(f"profile:{p}", numeric_at(c, p), r.low, r.high, r.measure,
                      _profile_label(job, p))
            for p, r in c.assumed.items() if not p.startswith(CAMPAIGN_ONLY)]


def _profile_label(job: Job, path: str) -> str:
    """``node.gemm_efficiency.3.efficiency`` -> ``GEMM efficiency at min dim 1024``."""
    parts = path.split(".")
    if parts[:2] == ["node", "gemm_efficiency"] and len(parts) == 4 and parts[2].isdigit():
        return f"GEMM efficiency at min dim {job.cluster.node.gemm_efficiency[int(parts[2])].min_dim}"
    return path


def stack_inputs(job: Job) -> list[Uncertain]:
    """The stack's fitted parameters with their 90% intervals, and its model error."""
    s = job.stack
    out = [Uncertain(f"stack:{p}", stack_value(s, p), r.low, r.high, STACK_MEASURE,
                     f"{s.name}: {p}") for p, r in s.intervals.items()]
    if s.log_residual_sigma > 0:
        k = math.exp(Z90 * s.log_residual_sigma)
        out.append(Uncertain("stack:model_error", 1.0, 1.0 / k, k,
                             "more runs of the stack, of shapes like the job's",
                             f"{s.name}: model error (x step time)"))
    return out


def _with_profile(job: Job, path: str, value: float) -> Job:
    """``job`` with the profile's figure at ``path`` set to ``value`` (an end of its range).

    Raises:
        SpecError: the value breaks a rule of the profile across fields (a reserved memory
            range reaching the node's memory): named as the range.
    """
    try:
        return replace(job, cluster=with_numbers(job.cluster, {path: value}, "cluster"))
    except SpecError as exc:
        raise SpecError(f"cluster {job.cluster.name}: assumed.{path}: {value:g}, an end of its "
                        f"range, breaks the profile ({exc})") from None


@dataclass(frozen=True)
class Response:
    """The step time and time to train with one input at its low and high end."""

    input: Uncertain
    step_s: tuple[float, float]
    train_days: tuple[float | None, float | None]


def _train_days(job: Job, step_s: float, write_GBps: float | None = None,
                mtbf_node_h: float | None = None) -> float | None:
    steps = job.run_steps()
    if steps is None or not math.isfinite(step_s):
        return None
    c = job.cluster
    plan = plan_failures(steps * step_s, checkpoint_bytes(job),
                         (write_GBps or c.checkpoint_write_GBps) * 1e9,
                         mtbf_node_h or c.mtbf_node_h, job.nodes)
    return plan.wall_s / 86400.0


def _step_s(job: Job, setup: Setup | None) -> float:
    return run_engine(job, setup or prepare(job), "fast").step_time_s


def profile_response(pred: Prediction, setup: Setup, item: Uncertain) -> Response:
    """Step time and time to train with the profile figure ``item`` at its low and high."""
    steps, days = [], []
    for end in (item.low, item.high):
        job = _with_profile(pred.job, item.path, end)
        # a network figure: the same routes at other rates (placed anew if it moves them)
        own = reprice(setup, job) if item.path.startswith(NETWORK) else setup
        step = _step_s(job, own)
        steps.append(step)
        days.append(_train_days(job, step))
    return Response(item, (steps[0], steps[1]), (days[0], days[1]))


def stack_response(pred: Prediction, setup: Setup, item: Uncertain) -> Response:
    """Step time and time to train with the stack parameter (or model error) ``item`` at
    the ends of its 90% interval."""
    steps = []
    for end in (item.low, item.high):
        if item.path == "model_error":
            steps.append(pred.step_time_s * end)
            continue
        job = replace(pred.job, stack=with_values(pred.job.stack, {item.path: end}))
        steps.append(_step_s(job, setup))
    days = tuple(_train_days(pred.job, s) for s in steps)
    return Response(item, (steps[0], steps[1]), (days[0], days[1]))


def responses(pred: Prediction, setup: Setup,
              progress: Callable[[str], None] | None = None) -> list[Response]:
    """One-at-a-time responses of every uncertain input of ``pred``'s job."""
    out = []
    for item in profile_inputs(pred.job) + stack_inputs(pred.job):
        if progress:
            progress(item.name)
        fn = profile_response if item.source == "profile" else stack_response
        out.append(fn(pred, setup, item))
    return out


def _quantiles(values: np.ndarray) -> Quantiles:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return Quantiles(float(p10), float(p50), float(p90))


def _triangular(rng: np.random.Generator, item: Uncertain, n: int) -> np.ndarray:
    if item.high <= item.low:
        return np.full(n, item.value)
    return rng.triangular(item.low, min(max(item.value, item.low), item.high), item.high, n)


def _interpolate(x: np.ndarray, r: Response, central: float) -> np.ndarray:
    """Effect on the step of a profile figure at ``x``: the curve a + b / x + c x through
    (low, step_low), (value, central), (high, step_high), which is exact for a time that
    goes as the inverse of the figure (an efficiency, a bandwidth) or as the figure itself
    (an overhead, a latency); piecewise linear when the three points do not fix it."""
    lo, mid, hi = r.input.low, r.input.value, r.input.high
    ys = np.array([r.step_s[0], central, r.step_s[1]])
    xs = np.array([lo, mid, hi])
    if min(xs) > 0 and lo < mid < hi:
        basis = np.stack([np.ones(3), 1.0 / xs, xs], axis=1)
        a, b, c = np.linalg.solve(basis, ys)
        return (a + b / x + c * x) - central
    return np.interp(x, xs, ys) - central


@dataclass(frozen=True)
class Draws:
    """Joint draws of the uncertain inputs: the stack's log parameters (n, k), each profile
    figure's values (n,), the model error's standard normals (n,)."""

    stack_logs: np.ndarray
    profile: dict[str, np.ndarray]
    noise: np.ndarray


@dataclass(frozen=True)
class Surrogate:
    """The step as a cheap function of the uncertain inputs (see the module docstring)."""

    central: float
    paths: list[str]  # the stack's fitted parameters
    mean: np.ndarray  # their logs at the centre
    cov: np.ndarray  # covariance of their logs
    slope: np.ndarray  # d step / d natural coordinate
    sign: np.ndarray  # -1 for an efficiency, +1 for an overhead
    profile: list[Response]
    sigma: float  # the stack's model error

    def draw(self, rng: np.random.Generator, n: int) -> Draws:
        logs = (rng.multivariate_normal(self.mean, self.cov, size=n, method="svd")
                if self.paths else np.zeros((n, 0)))
        values = {r.input.path: _triangular(rng, r.input, n) for r in self.profile}
        noise = rng.standard_normal(n) if self.sigma > 0 else np.zeros(n)
        return Draws(logs, values, noise)

    def steps(self, d: Draws) -> np.ndarray:
        """The step time of each draw."""
        coord0 = np.exp(self.sign * self.mean)
        step = self.central + (np.exp(self.sign * d.stack_logs) - coord0) @ self.slope
        profile = np.zeros(len(d.noise))
        for r in self.profile:
            profile = profile + _interpolate(d.profile[r.input.path], r, self.central)
        # the profile's effects scale with the stack's: relative to the central step
        step = step * (1.0 + profile / self.central) * np.exp(self.sigma * d.noise)
        return np.maximum(step, 1e-12)


def surrogate(pred: Prediction, setup: Setup, resp: list[Response]) -> Surrogate:
    """The step of ``pred`` as a function of its uncertain inputs: exact derivatives of the
    stack's fitted parameters in their natural coordinates (one simulated run), the profile
    figures' simulated ends (``resp``)."""
    job, central = pred.job, pred.step_time_s
    stack = job.stack
    paths = [p for p in stack.intervals if p in FITTABLE]
    mean = np.log([stack_value(stack, p) for p in paths]) if paths else np.zeros(0)
    sign = np.array([-1.0 if p in EFFICIENCIES else 1.0 for p in paths])
    slope = np.zeros(len(paths))
    if paths:
        grad = step_with_gradient(job, setup, paths)
        slope = np.array([grad.d_step_d_log[p] for p in paths]) / (sign * np.exp(sign * mean))
    cov = _log_covariance(stack, paths) if paths else np.zeros((0, 0))
    profile = [r for r in resp if r.input.source == "profile"]
    return Surrogate(central, paths, mean, cov, slope, sign, profile, stack.log_residual_sigma)


def _log_covariance(stack: Any, paths: list[str]) -> np.ndarray:
    """Covariance of the logs of ``paths``: the fit's, else independent from the 90%
    intervals (their half-width in logs is 1.645 standard deviations)."""
    prov = stack.provenance
    if prov is not None and prov.covariance and set(paths) <= set(prov.parameters):
        idx = [prov.parameters.index(p) for p in paths]
        return np.array(prov.covariance)[np.ix_(idx, idx)]
    sd = [math.log(stack.intervals[p].high / stack.intervals[p].low) / (2 * Z90)
          for p in paths]
    return np.diag(np.square(sd))


@dataclass(frozen=True)
class IntervalResult:
    """p10/p50/p90 of the step time and the time to train, and what they come from."""

    step_time_s: Quantiles
    time_to_train_days: Quantiles | None
    draws: int
    inputs: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "step_time_s": self.step_time_s.to_json(),
            "time_to_train_days": (None if self.time_to_train_days is None
                                   else self.time_to_train_days.to_json()),
            "draws": self.draws,
            "inputs": self.inputs,
            "method": "one-at-a-time simulations at each assumed figure's ends, exact stack "
                      "derivatives, joint draws (fugaku_sim/sim/intervals.py)",
        }


def predict_intervals(pred: Prediction, setup: Setup, draws: int = DRAWS, seed: int = 0,
                      resp: list[Response] | None = None) -> IntervalResult:
    """p10/p50/p90 of ``pred``'s step time and time to train (see the module docstring)."""
    job = pred.job
    resp = resp if resp is not None else responses(pred, setup)
    model = surrogate(pred, setup, resp)
    d = model.draw(np.random.default_rng(seed), draws)
    step = model.steps(d)
    train = None
    if job.run_steps() is not None:
        c = job.cluster
        write = d.profile.get("checkpoint_write_GBps", np.full(draws, c.checkpoint_write_GBps))
        mtbf = d.profile.get("mtbf_node_h", np.full(draws, c.mtbf_node_h))
        days = [_train_days(job, float(s), float(w), float(m))
                for s, w, m in zip(step, write, mtbf)]
        train = _quantiles(np.array(days, dtype=float))
    return IntervalResult(_quantiles(step), train, draws, [r.input.name for r in resp])


@dataclass(frozen=True)
class SensitivityRow:
    """How far one input moves the answer between the ends of its range."""

    name: str
    label: str
    low: float
    value: float
    high: float
    step_s: tuple[float, float]
    train_days: tuple[float | None, float | None]
    swing_step: float  # |step(high) - step(low)| / central step
    swing_train: float | None
    measure: str

    def to_json(self) -> dict[str, Any]:
        return {"input": self.name, "label": self.label, "low": self.low, "value": self.value, "high": self.high,
                "step_time_s": {"at_low": self.step_s[0], "at_high": self.step_s[1]},
                "time_to_train_days": {"at_low": self.train_days[0],
                                       "at_high": self.train_days[1]},
                "swing_step_time": self.swing_step, "swing_time_to_train": self.swing_train,
                "measure": self.measure}


def sensitivity(pred: Prediction, resp: list[Response]) -> list[SensitivityRow]:
    """The inputs ranked by their swing of the time to train (else the step time)."""
    central = pred.step_time_s
    days0 = _train_days(pred.job, central)
    rows = []
    for r in resp:
        swing_train = None
        if days0 and None not in r.train_days:
            swing_train = abs(float(r.train_days[1]) - float(r.train_days[0])) / days0  # type: ignore[arg-type]
        rows.append(SensitivityRow(
            r.input.name, r.input.label or r.input.path, r.input.low, r.input.value, r.input.high, r.step_s, r.train_days,
            abs(r.step_s[1] - r.step_s[0]) / central, swing_train, r.input.measure))
    return sorted(rows, key=lambda x: -(x.swing_train if x.swing_train is not None
                                        else x.swing_step))
