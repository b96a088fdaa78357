"""Goal-seek: the ladder of node counts, the Pareto front, the choice and its misses."""

from __future__ import annotations

import math

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.sim.goalseek import (
    GOAL_QUANTILE,
    Goal,
    Sampling,
    allowed_node_counts,
    ladder,
    nodes_floor,
    seek,
)
from fugaku_sim.sim.plan import candidate_groups
from fugaku_sim.spec import ModelSpec, TrainSpec, load_cluster, load_model_preset
from fugaku_sim.spec.campaign import CampaignSettings
from tests.sim.small import small_torus

MODEL = ModelSpec(name="m", layers=8, hidden=512, heads=8, seq_len=256, vocab=8000)
TRAIN = TrainSpec(global_batch=32, steps=200_000)
SETTINGS = CampaignSettings(checkpoint_every=500)


def test_allowed_counts_are_those_the_plan_can_fill() -> None:
    """Every allowed count has a (tp, pp, dp) split; a count left out has none."""
    cluster = small_torus((4, 4, 4))
    counts = allowed_node_counts(cluster, MODEL, TRAIN, 1, 64)
    for n in range(1, 65):
        valid = any(not isinstance(j, str) for g in candidate_groups(cluster, MODEL, TRAIN, n) for j in g)
        assert (n in counts) == valid, n


def test_fugaku_ladder_for_the_13b_model() -> None:
    """Two rungs per doubling from 1,152 to the usable job scale, every rung splittable."""
    preset = load_model_preset("fugaku-llm-13b")
    train = TrainSpec(**preset.train)
    fugaku = load_cluster("fugaku")
    counts = allowed_node_counts(fugaku, preset.model, train, 1152, fugaku.allocation.max_nodes)
    rungs = ladder(counts, 1152, fugaku.allocation.max_nodes)
    assert rungs[0] == 1152 and rungs[-1] == 82944 and 13 <= len(rungs) <= 15
    ratios = [b / a for a, b in zip(rungs, rungs[1:])]
    assert all(1.1 < r < 2.0 for r in ratios[:-1])
    # the floor: the model's states in usable memory, 100% of peak within the deadline
    assert nodes_floor(fugaku, preset.model, train, None) == 150  # a year at peak
    assert 1500 < nodes_floor(fugaku, preset.model, train, 30.0) < 2000


@pytest.fixture(scope="module")
def result():
    cluster = small_torus((4, 4, 4))
    counts = ladder(allowed_node_counts(cluster, MODEL, TRAIN, 2, 64), 2, 64)
    return seek(cluster, MODEL, TRAIN, SETTINGS, Goal(), counts, Sampling(40))


def test_front_is_the_undominated_points(result) -> None:
    front = result.front()
    assert front
    keys = {p.nodes: (p.q("wall_days", "p50"), p.q("wall_days", "p90"), p.q("node_hours", "p50"))
            for p in result.points}
    for p in result.points:
        dominated = any(all(a <= b for a, b in zip(keys[o], keys[p.nodes]))
                        and keys[o] != keys[p.nodes] for o in keys)
        assert (p in front) != dominated


def test_choice_is_the_smallest_allocation_meeting_the_deadline(result) -> None:
    days = sorted(p.q("wall_days", GOAL_QUANTILE) for p in result.points)
    deadline = days[len(days) // 2]
    result.goal = Goal(deadline_days=deadline)
    choice = result.choice()
    assert choice.q("wall_days", GOAL_QUANTILE) <= deadline
    assert all(p.allocated_nodes >= choice.allocated_nodes for p in result.points
               if p.q("wall_days", GOAL_QUANTILE) <= deadline)
    budget = choice.q("node_hours", GOAL_QUANTILE) * 1.000001
    result.goal = Goal(budget_node_hours=budget)  # budget alone: the fastest within it
    fastest = result.choice()
    assert fastest.q("node_hours", GOAL_QUANTILE) <= budget
    assert fastest.q("wall_days", GOAL_QUANTILE) <= choice.q("wall_days", GOAL_QUANTILE)


def test_missed_goals_name_the_best_reachable(result) -> None:
    best = min(p.q("wall_days", GOAL_QUANTILE) for p in result.points)
    result.goal = Goal(deadline_days=best / 2)
    with pytest.raises(UserError, match=rf"best reachable p90 is {best:.1f} days"):
        result.choice()
    cheapest = min(p.q("node_hours", GOAL_QUANTILE) for p in result.points)
    result.goal = Goal(budget_node_hours=cheapest / 2)
    with pytest.raises(UserError, match=rf"cheapest p90 is {cheapest:,.0f} node-hours"):
        result.choice()


def test_every_rung_skipped_is_one_error() -> None:
    """An elapsed time shorter than one checkpoint interval on every rung."""
    cluster = small_torus((4, 4, 4))
    settings = CampaignSettings(checkpoint_every=100_000, elapse_h=0.5)
    with pytest.raises(UserError, match="no job could save its work"):
        seek(cluster, MODEL, TRAIN, settings, Goal(deadline_days=1.0), [8, 16],
             Sampling(5, elapse_given=True))
    assert math.isfinite(nodes_floor(cluster, MODEL, TRAIN, 1.0))
