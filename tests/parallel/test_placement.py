"""Placement of ranks on job coordinates: pure arithmetic, checked without a simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.parallel.groups import RankGrid
from fugaku_sim.parallel.placement import (
    factor_axes,
    job_shapes,
    linear_placement,
    node_split,
    place_ranks,
    topology_placement,
)


def virtual_distance(a: tuple[int, ...], b: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """Hops on the virtual torus (every virtual axis is a ring)."""
    return sum(min(abs(x - y), e - abs(x - y)) for x, y, e in zip(a, b, shape))


def test_linear_is_rank_order_axis0_fastest() -> None:
    p = linear_placement(RankGrid(2, 2, 2), [2, 2, 2], 1)
    assert p.node.tolist() == list(range(8))
    assert p.coords(5) == (1, 0, 1)


def test_fugaku_llm_topology_factors() -> None:
    assert factor_axes({"tp": 6, "pp": 8, "dp": 288}, [48, 6, 48]) == [
        (1, "tp", 6), (0, "dp", 48), (2, "pp", 8), (2, "dp", 6),
    ]  # fmt: skip


def test_fugaku_llm_topology_groups_are_neighbours() -> None:
    grid = RankGrid(6, 8, 288)
    p = topology_placement(grid, [48, 6, 48], 1)
    shape = p.shape
    assert len(set(p.node.tolist())) == 13824
    for rank in (0, 1234, 13823):
        tp = [p.coords(r) for r in grid.group(rank, "tp")]
        ring = tp + tp[:1]
        assert all(virtual_distance(a, b, shape) == 1 for a, b in zip(ring, ring[1:]))
        pp = [p.coords(r) for r in grid.group(rank, "pp")]
        assert all(virtual_distance(a, b, shape) == 1 for a, b in zip(pp, pp[1:]))


def test_processes_per_node_fill_with_tensor_peers_first() -> None:
    assert node_split(RankGrid(tp=8, pp=4, dp=2), 8) == {"tp": 8, "dp": 1, "pp": 1}
    assert node_split(RankGrid(tp=4, pp=2, dp=4), 8) == {"tp": 4, "dp": 2, "pp": 1}
    grid = RankGrid(8, 2, 2)
    p = topology_placement(grid, [4], 8)
    for group in grid.tensor_groups():
        assert len({int(p.node[r]) for r in group}) == 1


@st.composite
def grids_and_shapes(draw: st.DrawFn) -> tuple[RankGrid, list[int], int]:
    tp, pp, dp = (draw(st.sampled_from([1, 2, 3, 4, 6])) for _ in range(3))
    ppn = draw(st.sampled_from([d for d in (1, 2, 4, 8) if (tp * pp * dp) % d == 0]))
    nodes = tp * pp * dp // ppn
    splits = [
        (a, b, nodes // (a * b))
        for a in range(1, nodes + 1)
        for b in range(1, nodes + 1)
        if nodes % (a * b) == 0
    ]
    shape = list(draw(st.sampled_from(splits)))
    order = draw(st.sampled_from(["tp-dp-pp", "dp-tp-pp", "pp-dp-tp"]))
    return RankGrid(tp, pp, dp, order), shape, ppn


@settings(max_examples=60, deadline=None)
@given(grids_and_shapes(), st.sampled_from(["linear", "topology"]))
def test_every_node_slot_holds_exactly_one_rank(
    case: tuple[RankGrid, list[int], int], strategy: str
) -> None:
    grid, shape, ppn = case
    p = place_ranks(grid, shape, ppn, strategy)  # type: ignore[arg-type]
    pairs = set(zip(p.node.tolist(), p.slot.tolist()))
    assert len(pairs) == grid.world
    assert p.node.min() == 0 and p.node.max() == math.prod(shape) - 1
    assert np.all((p.slot >= 0) & (p.slot < ppn))


def test_job_shapes_respect_units_and_limits() -> None:
    shapes = job_shapes(13824, [48, 69, 48], [2, 3, 2])
    assert [48, 6, 48] in shapes
    assert all(a % 2 == 0 and b % 3 == 0 and c % 2 == 0 for a, b, c in shapes)
    assert all(math.prod(s) == 13824 for s in shapes)


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not hold"):
        place_ranks(RankGrid(2, 2, 2), [3, 3], 1, "linear")
