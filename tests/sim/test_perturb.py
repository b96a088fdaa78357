"""Derivatives of a simulated step from one run (perturbation analysis with dual numbers),
and long pipelines simulated at two short accumulation counts: both against the plain
simulator (central finite differences; full runs)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.sim.perturb import (
    Dual,
    _with_micro_batches,
    reduced_counts,
    step_time_at,
    step_with_gradient,
)
from fugaku_sim.sim.predict import prepare, run_engine
from fugaku_sim.spec.stack import FITTABLE, IDEAL, stack_value, with_values

from .small import small_job, small_torus

SLOW = with_values(IDEAL, {
    "gemm_efficiency_scale": 0.3, "nongemm_efficiency": 0.05, "kernel_overhead_us": 40.0,
    "collective_efficiency.allreduce": 0.3, "collective_efficiency.p2p": 0.2,
    "step_overhead_s": 0.2, "micro_batch_overhead_s": 0.003})
PATHS = [p for p in FITTABLE if p != "collective_efficiency.allgather"]

finite = st.floats(-50, 50, allow_nan=False).filter(lambda x: abs(x) > 1e-3)


@settings(max_examples=60, deadline=None)
@given(finite, finite, finite)
def test_dual_arithmetic_matches_finite_differences(a: float, b: float, c: float) -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return (x * b + c) / (x - 100.0) - c / x + 3 - x + 2 * x

    x = Dual(a, np.array([1.0]))
    h = 1e-6 * max(1.0, abs(a))
    fd = (f(a + h) - f(a - h)) / (2 * h)
    assert f(x).grad[0] == pytest.approx(fd, rel=1e-5, abs=1e-7)
    assert float(f(x)) == pytest.approx(f(a))
    assert max(x, Dual(a - 1, np.zeros(1))) is x


def _jobs():  # type: ignore[no-untyped-def]
    c = small_torus((2, 2, 2))
    return {
        "tp2-pp2-dp2": small_job(c, 2, 2, 2),
        "pp4-first-half": small_job(c, 1, 4, 2, recompute="first-half", global_batch=40),
        "gpipe": small_job(c, 2, 2, 2, schedule="gpipe", global_batch=24),
        "overlap": small_job(c, 2, 1, 4, overlap_grad_reduce=True, global_batch=16),
    }


@pytest.mark.parametrize("name", list(_jobs()))
def test_gradient_of_one_run_equals_finite_differences(name: str) -> None:
    job = replace(_jobs()[name], stack=SLOW)
    setup = prepare(job)
    grad = step_with_gradient(job, setup, PATHS, reduce=False)
    assert grad.step_time_s == pytest.approx(run_engine(job, setup, "fast").step_time_s,
                                              rel=1e-12)
    for path in PATHS:
        p, h = stack_value(SLOW, path), 1e-6
        up = step_time_at(job, setup, {path: p * math.exp(h)}, reduce=False)
        down = step_time_at(job, setup, {path: p * math.exp(-h)}, reduce=False)
        assert grad.d_step_d_log[path] == pytest.approx((up - down) / (2 * h), rel=1e-4,
                                                        abs=1e-9), path


@pytest.mark.parametrize(("schedule", "recompute", "pp", "chunks", "m"), [
    ("1f1b", "first-half", 4, 1, 40), ("1f1b", "none", 2, 1, 17), ("gpipe", "all", 4, 1, 30),
    ("interleaved", "none", 2, 2, 32), ("1f1b", "none", 1, 1, 50),
])
@pytest.mark.parametrize("stack", [IDEAL, SLOW], ids=["ideal", "slow"])
def test_long_pipeline_from_two_short_ones(schedule: str, recompute: str, pp: int, chunks: int,
                                           m: int, stack) -> None:  # type: ignore[no-untyped-def]
    c = small_torus((2, 2, 2))
    dp = {1: 4, 2: 2, 4: 1}[pp]  # 2 x pp x dp = the 8 nodes
    job = small_job(c, 2, pp, dp, schedule=schedule, virtual_stages=chunks, recompute=recompute)
    job = replace(_with_micro_batches(job, m), stack=stack)
    assert reduced_counts(job) is not None
    setup = prepare(job)
    full = step_with_gradient(job, setup, PATHS, reduce=False)
    fast = step_with_gradient(job, setup, PATHS, reduce=True)
    assert fast.step_time_s == pytest.approx(full.step_time_s, rel=1e-10)
    for path in PATHS:
        assert fast.d_step_d_log[path] == pytest.approx(full.d_step_d_log[path], rel=1e-8,
                                                         abs=1e-12)


def test_short_pipelines_are_simulated_whole() -> None:
    job = small_job(small_torus((2, 2, 2)), 2, 4, 1, global_batch=10)  # m = 10 <= 2 (p + 1)
    assert reduced_counts(job) is None
    assert reduced_counts(_with_micro_batches(job, 11)) == (4, 5)
