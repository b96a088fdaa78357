"""Intervals on a prediction and the sensitivity ranking, checked against simulating joint
draws of the uncertain inputs one by one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fugaku_sim.sim.intervals import (
    NETWORK,
    Z90,
    _log_covariance,
    predict_intervals,
    profile_inputs,
    responses,
    sensitivity,
    stack_inputs,
    surrogate,
)
from fugaku_sim.sim.predict import predict, prepare, run_engine
from fugaku_sim.spec.ranges import with_numbers
from fugaku_sim.spec.stack import IDEAL, StackSpec, with_values

from .small import small_job, small_torus

FITTED = StackSpec.model_validate({
    "name": "fitted-test", "gemm_efficiency_scale": 0.4, "nongemm_efficiency": 0.05,
    "kernel_overhead_us": 100.0, "log_residual_sigma": 0.08,
    "intervals": {"gemm_efficiency_scale": {"low": 0.34, "high": 0.47},
                  "nongemm_efficiency": {"low": 0.04, "high": 0.062},
                  "kernel_overhead_us": {"low": 60.0, "high": 170.0}},
    "provenance": {"method": "test", "parameters": ["gemm_efficiency_scale",
                                                    "nongemm_efficiency", "kernel_overhead_us"],
                   "covariance": [[0.0088, -0.004, 0.0], [-0.004, 0.0168, -0.01],
                                  [0.0, -0.01, 0.1]]},
})


def _job(stack: StackSpec = IDEAL):  # type: ignore[no-untyped-def]
    job = small_job(small_torus((2, 2, 2)), 2, 2, 2, tokens=2e9)
    return replace(job, stack=stack)


def test_inputs_come_from_profile_ranges_and_stack_intervals() -> None:
    job = _job(FITTED)
    prof = {u.path for u in profile_inputs(job)}
    assert "node.op_overhead_us" in prof and not any(p.startswith("campaign.") for p in prof)
    stack = {u.path: u for u in stack_inputs(job)}
    assert set(stack) == {"gemm_efficiency_scale", "nongemm_efficiency", "kernel_overhead_us",
                          "model_error"}
    me = stack["model_error"]
    assert me.high == pytest.approx(np.exp(Z90 * 0.08)) and me.low == pytest.approx(1 / me.high)
    assert _log_covariance(FITTED, ["kernel_overhead_us", "gemm_efficiency_scale"])[0, 1] == 0.0


def test_quantiles_are_ordered_and_bracket_the_central_value() -> None:
    job = _job(FITTED)
    setup = prepare(job)
    pred = predict(job, setup=setup)
    iv = predict_intervals(pred, setup, draws=400)
    q = iv.step_time_s
    assert q.p10 < q.p50 < q.p90
    assert q.p10 < pred.step_time_s < q.p90
    t = iv.time_to_train_days
    assert t is not None and t.p10 < pred.to_json()["time_to_train_days"] < t.p90
    assert predict_intervals(pred, setup, draws=400).step_time_s == q  # a fixed seed


def _simulated(job, model, d):  # type: ignore[no-untyped-def]
    """Each draw ``d`` simulated in full: the profile and the stack moved to its values."""
    base = prepare(job)
    out = []
    for i in range(len(d.noise)):
        values = {p: float(v[i]) for p, v in d.profile.items()}
        stack = with_values(job.stack, dict(zip(model.paths, map(float, np.exp(d.stack_logs[i])))))
        moved = replace(job, cluster=with_numbers(job.cluster, values), stack=stack)
        network = any(p.startswith(NETWORK) for p in values)
        step = run_engine(moved, prepare(moved) if network else base, "fast").step_time_s
        out.append(step * np.exp(model.sigma * d.noise[i]))
    return np.array(out)


@pytest.mark.slow
def test_propagation_agrees_with_simulated_draws() -> None:
    """The surrogate (one-at-a-time ends of the profile figures, exact stack derivatives)
    against 60 joint draws each simulated in full, on the same draws: every step within 3%,
    the p10, p50 and p90 within 1.5%."""
    job = _job(FITTED)
    setup = prepare(job)
    pred = predict(job, setup=setup)
    model = surrogate(pred, setup, responses(pred, setup))
    d = model.draw(np.random.default_rng(3), 60)
    fast, slow = model.steps(d), _simulated(job, model, d)
    assert np.max(np.abs(fast / slow - 1)) < 0.03
    for q in (10, 50, 90):
        assert np.percentile(fast, q) == pytest.approx(np.percentile(slow, q), rel=0.015)


def test_sensitivity_ranks_by_swing_and_says_what_to_measure() -> None:
    job = _job(FITTED)
    setup = prepare(job)
    pred = predict(job, setup=setup)
    rows = sensitivity(pred, responses(pred, setup))
    swings = [r.swing_train for r in rows]
    assert swings == sorted(swings, reverse=True)
    assert all(r.measure for r in rows)
    top = rows[0]
    assert top.step_s[0] != top.step_s[1]
    # the ideal stack on a profile with ranges: only profile inputs
    ideal = predict(_job(), setup=setup)
    assert {r.name.partition(":")[0] for r in sensitivity(ideal, responses(ideal, setup))} == {
        "profile"}
