"""Non-contiguous and one-axis torus jobs: where their nodes sit, hops and shared links."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.sim.noncont import (
    block_snake_network,
    draw_units,
    noncont_network,
    unit_extents,
    unit_fill_coords,
)
from fugaku_sim.sim.topology import Flows, MappedTorus, hop_counts, max_link_load
from fugaku_sim.spec import ClusterSpec, load_cluster

FUGAKU = load_cluster("fugaku")


def ring_machine() -> ClusterSpec:
    """A machine of 8 nodes: X = 4 (torus) x a = 2 (mesh), units of 2 along a."""
    base = FUGAKU.model_dump()
    base["name"] = "ring-4x2"
    base["interconnect"]["dims"] = [
        {"name": "X", "size": 4, "wrap": True},
        {"name": "a", "size": 2, "wrap": False},
    ]
    base["allocation"] = {
        "max_nodes": 8,
        "virtual_axes": [["X", "a"]],
        "unit_shape": [2],
        "shape_dims_allowed": [1],
        "resource_groups": [{"name": "all", "min_nodes": 1, "max_nodes": 8,
                             "kinds": ["noncont", "torus"]}],
    }
    return ClusterSpec.model_validate(base)


def link(d: int, minus: int, x: int, a: int) -> int:
    """Link id on the 4 x 2 machine: dimension d, direction (0: +, 1: -), at node (x, a)."""
    return (2 * d + minus) * 8 + x + 4 * a


def test_three_nodes_in_two_scattered_units_worked_by_hand() -> None:
    """Units at X = 0 and X = 2: nodes (0,0), (0,1) fill the first, (2,0) starts the second.

    A ring 0 -> 1 -> 2 -> 0 run both ways. Dimension-order routing (X first, shortest way
    round the X ring, ties +):
      0->1: a+ at (0,0)                       1 hop
      1->2: X+ at (0,1), (1,1); a- at (2,1)   3 hops
      2->0: X+ at (2,0), (3,0)                2 hops (X 2 -> 0: a tie, goes +)
      1->0: a- at (0,1)                       1 hop
      2->1: X+ at (2,0), (3,0); a+ at (0,0)   3 hops
      0->2: X+ at (0,0), (1,0)                2 hops
    Links X+ at (2,0), X+ at (3,0) and a+ at (0,0) carry two flows each: every flow gets
    6.8 / 2 GB/s; no node injects more than 2 x 3.4 GB/s of its 38.1.
    """
    machine = ring_machine()
    assert unit_extents(machine) == [1, 2]
    coords = unit_fill_coords(np.array([[0, 0], [2, 0]]), [1, 2], 3)
    assert coords.tolist() == [[0, 0], [0, 1], [2, 0]]
    ic = machine.interconnect
    net = MappedTorus(ic, [4, 2], [True, False], coords)  # type: ignore[arg-type]
    src, dst = np.array([0, 1, 2, 1, 2, 0]), np.array([1, 2, 0, 0, 1, 2])
    flows = Flows(src, 0 * src, dst, 0 * dst)
    assert net.hops(flows).tolist() == [1, 3, 2, 1, 3, 2]
    routes = [net.route(int(s), 0, int(d), 0)[1:] for s, d in zip(src, dst)]  # after injection
    assert routes == [
        [link(1, 0, 0, 0)],
        [link(0, 0, 0, 1), link(0, 0, 1, 1), link(1, 1, 2, 1)],
        [link(0, 0, 2, 0), link(0, 0, 3, 0)],
        [link(1, 1, 0, 1)],
        [link(0, 0, 2, 0), link(0, 0, 3, 0), link(1, 0, 0, 0)],
        [link(0, 0, 0, 0), link(0, 0, 1, 0)],
    ]
    assert max_link_load(net.physical(src), net.physical(dst), net.extents, net.wraps) == 2
    assert net.seconds_per_byte(flows) == pytest.approx(2 / 6.8e9)
    assert net.step_latency_s(flows) == pytest.approx(0.49e-6 + 3 * 0.1e-6)


def test_fugaku_units_are_the_tofu_unit() -> None:
    assert unit_extents(FUGAKU) == [1, 1, 1, 2, 3, 2]  # X Y Z a b c


def test_draw_is_seeded_distinct_and_inside_the_machine() -> None:
    grid = [24, 23, 24, 1, 1, 1]
    a, b = draw_units(grid, 32, seed=0), draw_units(grid, 32, seed=0)
    assert (a == b).all()
    assert not (a == draw_units(grid, 32, seed=1)).all()
    assert len({tuple(r) for r in a.tolist()}) == 32
    assert ((a >= 0) & (a < np.array(grid))).all()


def test_units_are_a_random_distance_apart() -> None:
    """Mean hops between two uniformly drawn units of the 24 x 23 x 24 unit grid (torus
    rings): 24/4 + (23^2 - 1)/(4 x 23) + 24/4 = 17.74."""
    grid, ext = [24, 23, 24], np.array([24, 23, 24])
    expected = 6 + (23**2 - 1) / (4 * 23) + 6
    hops = []
    for seed in range(100):
        u = draw_units(grid, 16, seed)
        i, j = np.triu_indices(16, 1)
        hops.append(hop_counts(u[i], u[j], ext, np.array([True] * 3)).mean())
    assert np.mean(hops) == pytest.approx(expected, rel=0.02)


def test_fugaku_noncont_job_fills_units_of_neighbours() -> None:
    net = noncont_network(FUGAKU, 64, ppn=1)
    phys = net.physical(np.arange(64))
    assert len({tuple(r) for r in phys.tolist()}) == 64
    units = [tuple(r) for r in phys[:, :3].tolist()]
    assert len(set(units)) == 6  # ceil(64 / 12)
    assert all(len(set(units[k : k + 12])) == 1 for k in range(0, 60, 12))
    nodes = np.arange(63)
    hops = net.hops(Flows(nodes, 0 * nodes, nodes + 1, 0 * nodes))
    inside = np.array([units[i] == units[i + 1] for i in range(63)])
    assert (hops[inside] == 1).all() and (hops[~inside] > 1).all()


def test_one_axis_torus_of_512_nodes_snakes_through_whole_units() -> None:
    net = block_snake_network(FUGAKU, [4, 6, 22], 512, ppn=1)  # 528 nodes, 44 Tofu units
    assert net.extents == [2, 2, 11, 2, 3, 2]
    phys = net.physical(np.arange(512))
    assert len({tuple(r) for r in phys.tolist()}) == 512
    assert ((phys >= 0) & (phys < np.array(net.extents))).all()
    nodes = np.arange(511)
    assert net.hops(Flows(nodes, 0 * nodes, nodes + 1, 0 * nodes)).tolist() == [1] * 511


def test_processes_of_a_node_share_memory_through_their_own_ports() -> None:
    """Four processes of a node (one per CMG) in a ring both ways: each sends two flows and
    receives two, so each flow gets half of a process's 115 GB/s."""
    net = noncont_network(FUGAKU, 1, ppn=4)
    slots = np.arange(4)
    src = np.concatenate([slots, (slots + 1) % 4])
    dst = np.concatenate([(slots + 1) % 4, slots])
    flows = Flows(0 * src, src, 0 * dst, dst)
    assert net.seconds_per_byte(flows) == pytest.approx(2 / 115e9)
    route = net.route(0, 1, 0, 2)
    caps = net.capacities()
    assert len(route) == 2 and (caps[route] == 115e9).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 47), st.integers(0, 47)), min_size=1, max_size=30),
       st.integers(0, 1000))
def test_scattered_link_load_equals_routed_count(pairs: list[tuple[int, int]], seed: int) -> None:
    """The vectorised load over the lines flows use equals counting every routed link."""
    net = noncont_network(FUGAKU, 48, ppn=1)
    coords = net.coords[np.random.default_rng(seed).permutation(48)]
    net = MappedTorus(net.ic, net.extents, net.wraps, coords)
    pairs = [(a, b) for a, b in pairs if a != b] or [(0, 1)]
    counts: dict[int, int] = {}
    for a, b in pairs:
        for lk in net.route(a, 0, b, 0)[1:]:
            counts[lk] = counts.get(lk, 0) + 1
    src, dst = (np.array(v) for v in zip(*pairs))
    fast = max_link_load(net.physical(src), net.physical(dst), net.extents, net.wraps)
    assert fast == max(counts.values())
    assert net.nodes == FUGAKU.interconnect.nodes  # links of the whole machine
