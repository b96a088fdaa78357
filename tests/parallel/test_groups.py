"""Rank-group arithmetic, without MPI."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.parallel import RankGrid
from fugaku_sim.parallel.groups import RANK_ORDERS


def test_megatron_worked_example() -> None:
    grid = RankGrid(tp=2, pp=2, dp=2)
    assert grid.tensor_groups() == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert grid.data_groups() == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert grid.pipeline_groups() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert grid.pipeline_neighbours(2) == (None, 6)
    assert grid.pipeline_neighbours(6) == (2, None)


def test_fugaku_llm_groups() -> None:
    grid = RankGrid(tp=6, pp=8, dp=288)
    assert grid.world == 13_824
    assert grid.tensor_groups()[0] == [0, 1, 2, 3, 4, 5]
    assert grid.pipeline_groups()[0] == [i * 6 * 288 for i in range(8)]


degrees = st.integers(min_value=1, max_value=5)


@given(degrees, degrees, degrees, st.sampled_from(RANK_ORDERS))
def test_groups_partition_the_world(tp: int, pp: int, dp: int, order: str) -> None:
    grid = RankGrid(tp, pp, dp, order)
    for axis, size in (("tp", tp), ("pp", pp), ("dp", dp)):
        groups = grid.groups(axis)  # type: ignore[arg-type]
        assert len(groups) == grid.world // size
        assert all(len(g) == size for g in groups)
        assert sorted(itertools.chain.from_iterable(groups)) == list(range(grid.world))


@given(degrees, degrees, degrees, st.sampled_from(RANK_ORDERS))
def test_coords_round_trip(tp: int, pp: int, dp: int, order: str) -> None:
    grid = RankGrid(tp, pp, dp, order)
    for rank in range(grid.world):
        c = grid.coords(rank)
        assert grid.rank(c.tp, c.pp, c.dp) == rank
        # a rank's tensor group differs from it only in the tp coordinate
        for peer in grid.group(rank, "tp"):
            pc = grid.coords(peer)
            assert (pc.pp, pc.dp) == (c.pp, c.dp)


def test_fastest_axis_is_consecutive() -> None:
    grid = RankGrid(tp=2, pp=3, dp=4, order="dp-tp-pp")
    assert grid.data_groups()[0] == [0, 1, 2, 3]


def test_layout_grid_is_the_rank_grid_of_its_degrees_and_order() -> None:
    from fugaku_sim.spec import Layout

    layout = Layout(tp=2, pp=3, dp=4, rank_order="dp-tp-pp")
    assert layout.grid == RankGrid(tp=2, pp=3, dp=4, order="dp-tp-pp")
    assert layout.grid.tensor_groups()[0] == [0, 4]
