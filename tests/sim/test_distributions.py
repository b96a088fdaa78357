"""Samplers reproduce the quantiles and means they are built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.sim.distributions import (
    Fixed,
    NodeFailures,
    NoFailures,
    Quantiles,
    queue_wait,
)


def draws(sampler, n: int = 100_000, **kw) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.array([sampler.sample(rng, **kw) for _ in range(n)])


def test_split_lognormal_hits_its_three_quantiles() -> None:
    q = Quantiles(10.0, 12.0, 20.0)  # skewed: the upper tail is longer
    x = draws(q)
    assert np.quantile(x, [0.1, 0.5, 0.9]) == pytest.approx([10.0, 12.0, 20.0], rel=0.01)


def test_lognormal_is_symmetric_in_log() -> None:
    q = Quantiles.lognormal(3600.0, 12 * 3600.0)
    assert q.p10 == pytest.approx(300.0)
    x = draws(q)
    assert np.median(np.log(x)) == pytest.approx(math.log(3600.0), abs=0.02)


def test_quantiles_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="p10 <= p50 <= p90"):
        Quantiles(5.0, 4.0, 6.0)
    with pytest.raises(ValueError):
        Quantiles(0.0, 4.0, 6.0)


def test_no_queue_wait_is_zero() -> None:
    assert queue_wait(0, 0) == Fixed(0.0)
    assert queue_wait(1, 12).p50 == 3600.0


@pytest.mark.parametrize("shape", [1.0, 0.7, 2.0])
def test_system_failures_have_mean_mtbf_over_nodes(shape: float) -> None:
    model = NodeFailures(mtbf_node_s=1e6, shape=shape)
    x = draws(model, nodes=100)
    assert model.mean_s(100) == 1e4
    assert x.mean() == pytest.approx(1e4, rel=0.02)
    # shape below 1: more short gaps than the exponential (bursts), above 1: fewer
    short, exponential = np.mean(x < 0.1 * 1e4), 1 - math.exp(-0.1)
    if shape == 1.0:
        assert short == pytest.approx(exponential, abs=0.005)
    elif shape < 1:
        assert short > exponential + 0.01
    else:
        assert short < exponential - 0.01


def test_no_failures() -> None:
    assert NoFailures().sample(np.random.default_rng(0), 10) == math.inf
