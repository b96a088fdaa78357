"""Collective cost formulas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.sim.collectives import (
    CollectivePlan,
    RingPhase,
    p2p_time_s,
    ring_allreduce_steps,
    ring_allreduce_time_s,
    ring_allreduce_volume,
    ring_collective_steps,
    ring_collective_volume,
    ring_reduce_scatter_time_s,
    torus_allreduce_time_s,
)


def test_ring_allreduce_moves_2_n_minus_1_over_n() -> None:
    assert ring_allreduce_time_s(8e9, 8, 1e9, 0.0) == pytest.approx(2 * 7 / 8 * 8)
    assert ring_allreduce_time_s(1e6, 1, 1e9, 1.0) == 0.0
    assert ring_reduce_scatter_time_s(4e9, 4, 1e9, 1e-6) == pytest.approx(3 * (1e-6 + 1.0))
    assert p2p_time_s(1e9, 1e9, 1e-6) == pytest.approx(1.000001)


@given(st.integers(1, 64), st.floats(1.0, 1e10), st.floats(0.0, 1e-3))
def test_ring_time_is_its_steps_and_volume(ranks: int, nbytes: float, latency: float) -> None:
    """Alpha-beta cost of the ring: 2 (n - 1) latencies plus 2 (n - 1) / n of the message,
    the terms the detailed transport and the calibration fit take from the same functions."""
    bw = 1e9
    expected = ring_allreduce_steps(ranks) * latency + ring_allreduce_volume(ranks) * nbytes / bw
    assert ring_allreduce_time_s(nbytes, ranks, bw, latency) == pytest.approx(expected, rel=1e-12)
    assert ring_allreduce_volume(ranks) == 2 * (ranks - 1) / ranks


def test_calibration_fits_the_same_ring_terms() -> None:
    from fugaku_sim.calibrate.fit import ring_allreduce_factors

    assert ring_allreduce_factors(6) == (ring_allreduce_steps(6), ring_allreduce_volume(6))


@given(st.lists(st.integers(2, 12), min_size=1, max_size=3))
def test_per_dimension_bytes_telescope_to_the_ring(dims: list[int]) -> None:
    """Bandwidth term of the per-dimension all-reduce equals the flat ring's: 2 (1 - 1/N)."""
    n = 1
    for d in dims:
        n *= d
    grid = torus_allreduce_time_s(1e9, dims, [1e9] * len(dims), [0.0] * len(dims))
    assert grid == pytest.approx(ring_allreduce_time_s(1e9, n, 1e9, 0.0))


def test_bidirectional_phase_halves_bandwidth_time() -> None:
    one = RingPhase(4, 1.0, 1e-9, 0.0, directions=1).allreduce_time_s(4e9)
    two = RingPhase(4, 1.0, 1e-9, 0.0, directions=2).allreduce_time_s(4e9)
    assert two == pytest.approx(one / 2)


@pytest.mark.parametrize("ranks", [2, 3, 6, 48])
def test_reduce_scatter_and_all_gather_are_the_halves_of_the_all_reduce(ranks: int) -> None:
    """Each moves (n - 1) / n of the message in n - 1 steps (Thakur et al. 2005), so a
    reduce-scatter then an all-gather cost an all-reduce: sequence parallelism's pair costs
    what tensor parallelism's all-reduce does (Korthikanti et al. 2022, section 4.2.2)."""
    assert ring_collective_volume("reduce_scatter", ranks) == (ranks - 1) / ranks
    assert ring_collective_steps("all_gather", ranks) == ranks - 1
    phase = RingPhase(ranks, 0.5, 2e-10, 3e-6)
    halves = phase.time_s(1e8, "reduce_scatter") + phase.time_s(1e8, "all_gather")
    assert halves == pytest.approx(phase.time_s(1e8, "allreduce"))
    plan = CollectivePlan(((phase,), (phase, RingPhase(2, 0.25, 1e-10, 1e-6))), ("a", "b"))
    assert plan.time_s(1e8, "reduce_scatter") == pytest.approx(plan.time_s(1e8) / 2)
    assert plan.phases("b")[1].ranks == 2 and plan.phases("c") == ()
