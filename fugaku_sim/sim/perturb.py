"""Derivatives of a simulated step time with respect to the software stack, from one run.

A fast-mode step is a max-plus expression of the operations' durations: every start is the
maximum of the events it waits for, every end a start plus a duration. Such a function is
piecewise linear, and its derivative at a point is the sum of the derivatives of the
durations on the *critical path*, the chain of operations that set the step's end
(infinitesimal perturbation analysis of discrete-event systems: Ho and Cao, "Perturbation
analysis and optimization of queueing networks", J. Optim. Theory Appl. 40, 1983; Glasserman,
"Gradient Estimation via Perturbation Analysis", 1991).

:class:`Dual` is a float that carries its gradient with respect to chosen stack parameters.
Handing the simulator a stack whose parameters are Duals makes every duration a Dual; simpy
adds them to its clock, a process resumed by an event takes the clock of the event that woke
it (the binding predecessor), and the step's end comes out as a Dual whose gradient is the
critical path's: exact, from a single run (at a tie between two paths, one of the two
one-sided derivatives). :func:`step_with_gradient` does that for a job.

Long pipelines: once every stage has done its warm-up, a pipeline step with m micro-batches
lasts a + b m (one more micro-batch adds one period of the bottleneck stage).
:func:`step_with_gradient` simulates a pipeline of many micro-batches at two shorter
gradient-accumulation counts and extends the line to m, when ``reduce`` is set (exact once
the pipeline is periodic; tested against the full run on uniform and uneven stages,
recomputation on some stages, GPipe and the interleaved schedule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fugaku_sim.sim.predict import Setup, run_engine
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.stack import stack_value, with_values

_new_float, _add, _sub = float.__new__, float.__add__, float.__sub__


class Dual(float):
    """A float with a gradient (a numpy vector). Arithmetic with floats and Duals keeps
    the gradient (forward-mode differentiation); comparisons are those of the value."""

    __slots__ = ("grad",)
    grad: np.ndarray

    def __new__(cls, value: float, grad: np.ndarray) -> Dual:
        out = super().__new__(cls, value)
        out.grad = grad
        return out

    # addition and subtraction build the result without a call to __new__: the simulator's
    # clock and ledgers add durations a few million times in a fit
    def __add__(self, other: Any) -> Dual:
        out = _new_float(Dual, _add(self, other))
        out.grad = self.grad + other.grad if isinstance(other, Dual) else self.grad
        return out

    __radd__ = __add__

    def __sub__(self, other: Any) -> Dual:
        out = _new_float(Dual, _sub(self, other))
        out.grad = self.grad - other.grad if isinstance(other, Dual) else self.grad
        return out

    def __rsub__(self, other: Any) -> Dual:
        return Dual(other - float(self), -self.grad)

    def __mul__(self, other: Any) -> Dual:
        if isinstance(other, Dual):
            return Dual(float(self) * float(other),
                        self.grad * float(other) + other.grad * float(self))
        return Dual(float(self) * other, self.grad * other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Dual:
        if isinstance(other, Dual):
            b = float(other)
            return Dual(float(self) / b, (self.grad * b - other.grad * float(self)) / (b * b))
        return Dual(float(self) / other, self.grad / other)

    def __rtruediv__(self, other: Any) -> Dual:
        a = float(self)
        return Dual(other / a, -other * self.grad / (a * a))

    def __neg__(self) -> Dual:
        return Dual(-float(self), -self.grad)

    def __pos__(self) -> Dual:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dual, (float(self), self.grad))


def value_and_grad(x: float, size: int) -> tuple[float, np.ndarray]:
    """(value, gradient) of a Dual, or of a float (gradient 0)."""
    if isinstance(x, Dual):
        return float(x), np.asarray(x.grad, dtype=float)
    return float(x), np.zeros(size)


@dataclass(frozen=True)
class StepGradient:
    """A step time and its derivatives with respect to the logarithms of stack parameters."""

    step_time_s: float
    d_step_d_log: dict[str, float]  # parameter path -> d step_time_s / d ln(parameter)


def dual_stack_job(job: Job, paths: list[str]) -> Job:
    """``job`` with the stack parameters at ``paths`` made Duals whose gradient is with
    respect to their natural logarithms (d p / d ln p = p)."""
    n = len(paths)
    values = {}
    for i, path in enumerate(paths):
        p = stack_value(job.stack, path)
        values[path] = Dual(p, np.eye(n)[i] * p)
    return replace(job, stack=with_values(job.stack, values))


def _with_micro_batches(job: Job, m: int) -> Job:
    """``job`` with ``m`` micro-batches per replica (the global batch changed to match)."""
    per_step = job.train.micro_batch * job.layout.dp
    return replace(job, train=job.train.model_copy(update={"global_batch": m * per_step}))


def reduced_counts(job: Job) -> tuple[int, int] | None:
    """Two gradient-accumulation counts at which a long pipeline is simulated instead of all
    of its micro-batches (None when it is short enough to simulate whole): p and p + 1
    micro-batches for p stages, past the warm-up of p - 1 forwards (2p and 3p for the
    interleaved schedule, whose micro-batches come in groups of p and whose longer warm-up
    is not periodic from p on)."""
    pp, m = job.layout.pp, job.micro_batches
    low, high = (2 * pp, 3 * pp) if job.layout.schedule == "interleaved" else (pp, pp + 1)
    return (low, high) if m > 2 * high else None


def _dual_step(job: Job, setup: Setup, paths: list[str]) -> tuple[float, np.ndarray]:
    result = run_engine(dual_stack_job(job, paths), setup, "fast")
    return value_and_grad(result.step_time_s, len(paths))


def step_with_gradient(job: Job, setup: Setup, paths: list[str],
                       reduce: bool = True) -> StepGradient:
    """The fast-mode step time of ``job`` and its derivatives with respect to the logs of
    the stack parameters at ``paths``, from one run (two for a reduced long pipeline).

    Raises:
        ValueError: a path names no numeric stack field.
    """
    counts = reduced_counts(job) if reduce else None
    if counts is None:
        value, grad = _dual_step(job, setup, paths)
    else:
        (m1, m2), m = counts, job.micro_batches
        v1, g1 = _dual_step(_with_micro_batches(job, m1), setup, paths)
        v2, g2 = _dual_step(_with_micro_batches(job, m2), setup, paths)
        t = (m - m1) / (m2 - m1)
        value, grad = v1 + t * (v2 - v1), g1 + t * (g2 - g1)
    if not math.isfinite(value):
        raise ValueError(f"step time is not finite ({value})")
    return StepGradient(value, dict(zip(paths, map(float, grad))))


def step_time_at(job: Job, setup: Setup, values: Mapping[str, float],
                 reduce: bool = True) -> float:
    """The fast-mode step time of ``job`` with the stack fields of ``values`` set."""
    moved = replace(job, stack=with_values(job.stack, dict(values)))
    return step_with_gradient(moved, setup, [], reduce).step_time_s
