"""Communication plans of a placed job: the groups' grid view follows the nodes, not the ranks."""

from __future__ import annotations

import numpy as np

from fugaku_sim.parallel.groups import RankGrid
from fugaku_sim.parallel.placement import place_ranks
from fugaku_sim.sim.comm import grid_view, rank_array


def test_grid_view_counts_the_axes_the_group_occupies() -> None:
    """Topology placement puts rank r on a node other than r: the data-parallel groups of a
    tp=2 pp=2 dp=6 job on a 4x6 shape must be seen on the node coordinates they occupy.

    Worked by hand from the placement itself: each dp group's 6 nodes span some set of
    distinct coordinates per virtual axis; the grid view's counts are those numbers (with the
    node-slot level constant at ppn = 1), and their product is the group size.
    """
    grid = RankGrid(2, 2, 6, "tp-dp-pp")
    placement = place_ranks(grid, [4, 6], 1, "topology")
    assert not np.array_equal(placement.node, np.arange(grid.world))  # ranks != nodes
    members = rank_array(grid)[:, 0, :]  # dp groups of stage 0: (tp, dp)
    coords = placement.node_coords(placement.node[members.reshape(-1)]).reshape(2, 6, 2)
    expected = [len(set(coords[0, :, a])) for a in range(2)]
    view = grid_view(members, placement)
    assert view is not None
    _, counts = view
    assert sorted(counts) == sorted(c for c in expected if c > 1)
    assert int(np.prod(counts)) == 6
