"""Torus folding, routing and link loads; the switched fabric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.sim.topology import (
    Flows,
    Switched,
    Torus,
    diameter_hops,
    fold_extents,
    hop_counts,
    job_block,
    max_link_load,
    snake,
)
from fugaku_sim.spec import load_cluster
from tests.sim.small import small_torus


def fugaku_torus(shape: list[int]) -> Torus:
    c = load_cluster("fugaku")
    return Torus(c.interconnect, c.allocation, shape)  # type: ignore[arg-type]


def test_fold_puts_unit_dimension_first() -> None:
    assert fold_extents(48, [24, 2]) == [24, 2]
    assert fold_extents(6, [23, 3]) == [2, 3]
    assert snake([3, 2]).tolist() == [[0, 0], [1, 0], [2, 0], [2, 1], [1, 1], [0, 1]]


def test_fugaku_llm_block_and_wraps() -> None:
    t = fugaku_torus([48, 6, 48])
    assert t.extents == [24, 2, 24, 2, 3, 2]
    assert t.wraps == [True, False, True, False, True, False]
    assert t.nodes == 13824
    assert len({tuple(r) for r in t.physical(np.arange(t.nodes)).tolist()}) == 13824


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.booleans()),
                min_size=1, max_size=3))
def test_diameter_is_the_farthest_pair(axes: list[tuple[int, int, bool]]) -> None:
    """The block's diameter (what the job-shape choice scores) equals the largest hop count
    between two of its nodes under the routing the network model uses."""
    sizes = [max(a, b) for a, b, _ in axes]
    shape = [min(a, b) for a, b, _ in axes]
    c = small_torus(tuple(sizes)).model_dump()
    for dim, (_, _, wrap) in zip(c["interconnect"]["dims"], axes):
        dim["wrap"] = wrap
    cluster = type(small_torus()).model_validate(c)
    t = Torus(cluster.interconnect, cluster.allocation, shape)  # type: ignore[arg-type]
    extents, wraps = job_block(cluster.interconnect, cluster.allocation, shape)  # type: ignore[arg-type]
    assert (extents, wraps) == (t.extents, t.wraps)
    phys = t.physical(np.arange(t.nodes))
    src, dst = np.repeat(phys, t.nodes, axis=0), np.tile(phys, (t.nodes, 1))
    farthest = int(hop_counts(src, dst, np.array(extents), np.array(wraps)).max())
    assert diameter_hops(extents, wraps) == farthest


def test_fugaku_llm_diameter() -> None:
    c = load_cluster("fugaku")
    extents, wraps = job_block(c.interconnect, c.allocation, [48, 6, 48])  # type: ignore[arg-type]
    # X 24 and Z 24 wrap (12 hops each), b 3 wraps (1), a, c and Y (2 of 23) are open (1 each)
    assert diameter_hops(extents, wraps) == 12 + 1 + 12 + 1 + 1 + 1


def test_every_virtual_ring_is_one_hop_per_step() -> None:
    """A virtual axis is a snake: consecutive positions, and the closing pair, are neighbours."""
    t = fugaku_torus([48, 6, 48])
    for axis, extent in enumerate(t.shape):
        stride = int(np.prod(t.shape[:axis]))
        nodes = np.arange(extent) * stride
        flows = Flows(nodes, 0 * nodes, np.roll(nodes, -1), 0 * nodes)
        assert t.hops(flows).tolist() == [1] * extent


def brute_force_max_load(t: Torus, src: np.ndarray, dst: np.ndarray) -> int:
    counts: dict[int, int] = {}
    for a, b in zip(src.tolist(), dst.tolist()):
        for link in t.route(a, 0, b, 0)[1:]:  # skip the injection port
            counts[link] = counts.get(link, 0) + 1
    return max(counts.values(), default=0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 63), st.integers(0, 63)), min_size=1, max_size=40),
    st.booleans(),
)
def test_vectorised_link_load_equals_routed_count(pairs: list[tuple[int, int]], wrap: bool) -> None:
    t = Torus(*_small(wrap))
    pairs = [(a, b) for a, b in pairs if a != b] or [(0, 1)]
    src = np.array([a for a, _ in pairs])
    dst = np.array([b for _, b in pairs])
    fast = max_link_load(t.physical(src), t.physical(dst), t.extents, t.wraps)
    assert fast == brute_force_max_load(t, src, dst)


def _small(wrap: bool) -> tuple:
    c = small_torus((4, 4, 4))
    ic = c.interconnect.model_copy(
        update={"dims": [d.model_copy(update={"wrap": wrap}) for d in c.interconnect.dims]}
    )
    return ic, c.allocation, [4, 4, 4]


def test_single_flow_runs_at_one_engine_or_link_rate() -> None:
    t = fugaku_torus([48, 6, 48])
    one = Flows(np.array([0]), np.array([0]), np.array([1]), np.array([0]))
    # a TNI injects 38.1 / 6 = 6.35 GB/s, below the 6.8 GB/s link
    assert 1 / t.seconds_per_byte(one) == pytest.approx(38.1e9 / 6)


def test_switched_rails_and_nvswitch() -> None:
    c = load_cluster("dgx-a100")
    s = Switched(c, nodes=2, ppn=8)
    same = Flows(np.array([0]), np.array([0]), np.array([0]), np.array([1]))
    across = Flows(np.arange(8) * 0, np.arange(8), np.ones(8, dtype=int), np.arange(8))
    assert 1 / s.seconds_per_byte(same) == pytest.approx(300e9)
    assert 1 / s.seconds_per_byte(across) == pytest.approx(25e9)  # one HDR rail per GPU
    assert s.step_latency_s(across) == pytest.approx(5e-6)
