"""The campaign model: exact event logs worked out by hand, the failure-free limit, Young/Daly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.sim import campaign as campaign_module
from fugaku_sim.sim.campaign import PARTS, CampaignPlan, Restore, simulate
from fugaku_sim.sim.distributions import Fixed, NodeFailures, NoFailures
from fugaku_sim.sim.montecarlo import run_campaigns
from fugaku_sim.sim.reliability import expected_wall_time_s, young_interval_s


@dataclass
class Script:
    """Durations read off a list, in order (a stand-in for a queue or a failure model)."""

    values: list[float]
    taken: list[float] = field(default_factory=list)

    def sample(self, rng: np.random.Generator, nodes: int = 0) -> float:
        self.taken.append(nodes)
        return self.values.pop(0)

    def mean_s(self, nodes: int) -> float:
        return math.inf

    @property
    def p50(self) -> float:
        return 0.0


def logged(result) -> list[tuple[str, str, float]]:
    return [(e.who, e.what, e.t) for e in result.log]


def test_without_failures_and_limits_the_campaign_is_steps_times_step() -> None:
    for steps, step_s in [(92_038, 13.152618588176935), (7, 0.1), (1, 3.0)]:
        plan = CampaignPlan(steps=steps, step=Fixed(step_s), nodes=13824, dp=288)
        result = simulate(plan, np.random.default_rng(0))
        assert result.wall_s == steps * step_s
        assert result.parts_s["train"] == steps * step_s
        assert result.jobs == 1 and result.failures == 0


def test_chain_of_jobs_exact_log() -> None:
    """Six steps of 10 s, a checkpoint every 2 (1 s), start-up 5 s, restore 1 s per replica,
    50 s jobs; queue waits 3, 4, 2 s; the first job's nodes fail 20 s after it starts.

    job 1: starts at 3, trains from 8, fails at 23 before checkpoint 2 (safe at 29): nothing
    kept. job 2: starts at 27, trains from 32 (nothing to restore), checkpoint 4 is safe at
    32 + 40 + 2 = 74, the limit at 77 ends it. job 3: starts at 79, restores 2 x 1 s, trains
    steps 5 and 6 from 86, the last checkpoint is safe at 107 (its failure at 109 is too late).
    """
    plan = CampaignPlan(
        steps=6, step=Fixed(10.0), nodes=4, dp=2, checkpoint_every=2, write_s=1.0,
        startup_s=5.0, restore=Restore(per_replica_s=1.0), elapse_s=50.0,
        queue=Script([3.0, 4.0, 2.0]), failures=Script([20.0, math.inf, 30.0]),
    )
    result = simulate(plan, np.random.default_rng(0))
    assert logged(result) == [
        ("job 1", "submit", 0.0), ("job 1", "start", 3.0), ("job 1", "failure", 23.0),
        ("job 1", "end", 23.0), ("job 2", "submit", 23.0), ("job 2", "start", 27.0),
        ("job 2", "limit", 77.0), ("job 3", "submit", 77.0), ("job 3", "start", 79.0),
        ("job 3", "done", 107.0),
    ]  # fmt: skip
    assert result.parts_s == {"queue": 9.0, "startup": 17.0, "train": 60.0, "eval": 0.0,
                              "checkpoint": 3.0, "lost": 18.0}
    assert result.wall_s == 107.0 == sum(result.parts_s.values())
    assert result.node_s == (20.0 + 50.0 + 28.0) * 4
    assert (result.jobs, result.failures) == (3, 1)
    assert plan.failures.taken == [4, 4, 4]  # every run exposes the job's 4 nodes


def test_spare_then_shrink_exact_log() -> None:
    """Four steps of 10 s, a checkpoint after every step (free), start-up 1 s, restore 0.5 s
    per replica, one spare node, shrinking down to one replica allowed.

    The first failure (at 15) takes the spare: restart at once, restore step 1 (15 + 1 + 1),
    the second failure (at 26, a second before step 2 is safe) shrinks to one replica, whose
    steps take 20 s: restore (26 + 1 + 0.5), then steps 2-4 end at 87.5.
    """
    plan = CampaignPlan(
        steps=4, step=Fixed(10.0), nodes=4, dp=2, checkpoint_every=1, startup_s=1.0,
        restore=Restore(per_replica_s=0.5), spare_nodes=1, shrink_dp_min=1,
        failures=Script([15.0, 11.0, math.inf]),
    )
    result = simulate(plan, np.random.default_rng(0))
    assert logged(result) == [
        ("job 1", "submit", 0.0), ("job 1", "start", 0.0), ("job 1", "failure", 15.0),
        ("job 1", "restart", 15.0), ("job 1", "failure", 26.0), ("job 1", "shrink", 26.0),
        ("job 1", "done", 87.5),
    ]  # fmt: skip
    assert plan.failures.taken == [4, 4, 2]  # the dropped replica's nodes no longer fail it
    assert result.parts_s["startup"] == 1.0 + 2.0 + 1.5
    assert result.parts_s["lost"] == 4.0 + 9.0
    assert result.node_s == 87.5 * 5  # the spare is allocated all along
    assert (result.restarts, result.shrinks, result.jobs) == (1, 1, 1)


def test_shrink_factor_replaces_dp_over_dp_prime() -> None:
    plan = CampaignPlan(steps=2, step=Fixed(10.0), nodes=8, dp=4, checkpoint_every=1,
                        shrink_dp_min=3, failures=Script([5.0, math.inf]),
                        shrink_factor=lambda dp: 1.5)
    result = simulate(plan, np.random.default_rng(0))
    assert result.wall_s == 5.0 + 2 * 15.0


def test_trace_covers_every_job() -> None:
    plan = CampaignPlan(
        steps=6, step=Fixed(10.0), nodes=4, dp=2, checkpoint_every=2, write_s=1.0,
        startup_s=5.0, restore=Restore(per_replica_s=1.0), elapse_s=50.0,
        queue=Script([3.0, 4.0, 2.0]), failures=Script([20.0, math.inf, 30.0]),
    )
    trace = simulate(plan, np.random.default_rng(0), trace=True).trace
    marks = [(s.job, s.kind, s.start) for s in trace if s.start == s.end]
    assert marks == [(1, "failure", 23.0), (2, "checkpoint", 53.0), (2, "checkpoint", 74.0),
                     (2, "limit", 77.0), (3, "checkpoint", 107.0)]
    lost = [(s.job, s.start, s.end) for s in trace if s.kind == "lost"]
    assert lost == [(1, 8.0, 23.0), (2, 74.0, 77.0)]


def test_only_failures_matches_young_daly() -> None:
    """1,000 seeds of 30 days of steps under exponential failures (system MTBF 24 h) with
    Young's interval: the mean overhead matches Daly's expected wall time within 5% (and the
    exact expectation for exponential failures, M e^(R/M) (e^((tau + delta)/M) - 1) per
    interval, within 1%)."""
    mtbf, write, restart, step = 86400.0, 60.0, 120.0, 10.0
    every = round(young_interval_s(write, mtbf) / step)
    tau, steps = every * step, 259_200
    plan = CampaignPlan(steps=steps, step=Fixed(step), nodes=100, dp=100, checkpoint_every=every,
                        write_s=write, startup_s=restart, failures=NodeFailures(mtbf * 100))
    summary = run_campaigns(plan, 1000)
    solve = steps * step
    simulated = float(np.mean(summary.values("wall_s") - restart)) / solve - 1  # less 1st start
    daly = expected_wall_time_s(solve, write, restart, mtbf, tau) / solve - 1
    exact = mtbf * math.exp(restart / mtbf) * math.expm1((tau + write) / mtbf) / tau - 1
    assert simulated == pytest.approx(daly, rel=0.05)
    assert simulated == pytest.approx(exact, rel=0.01)
    assert summary.quantiles("failures")["mean"] == pytest.approx(solve * (1 + daly) / mtbf,
                                                                  rel=0.05)


def test_elapsed_limit_keeps_the_last_checkpoint() -> None:
    """Ten 1-h steps, a checkpoint every 3 (free), 4-h jobs: jobs 1 and 2 keep 3 steps and
    lose the fourth; job 3 trains steps 7-10 and saves the last one exactly at its limit,
    which counts as done."""
    plan = CampaignPlan(steps=10, step=Fixed(3600.0), nodes=2, dp=1, checkpoint_every=3,
                        elapse_s=4 * 3600.0)
    result = simulate(plan, np.random.default_rng(0))
    assert [e.what for e in result.log if e.what in ("limit", "done")] == [
        "limit", "limit", "done"]
    assert result.parts_s["lost"] == 2 * 3600.0
    assert result.wall_s == 3 * 4 * 3600.0


def test_hopeless_campaign_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(campaign_module, "MAX_RUNS", 50)
    plan = CampaignPlan(steps=100, step=Fixed(100.0), nodes=10, dp=10, checkpoint_every=50,
                        failures=NodeFailures(mtbf_node_s=10.0 * 60.0))  # fails every minute
    result = simulate(plan, np.random.default_rng(0))
    assert not result.finished and result.wall_s == math.inf and result.node_hours == math.inf
    assert result.jobs == 50


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    steps=st.integers(1, 400),
    every=st.integers(1, 60),
    evals=st.one_of(st.none(), st.integers(1, 60)),
    elapse_h=st.floats(3.0, 50.0),
    spares=st.integers(0, 2),
    shrink=st.booleans(),
)
def test_parts_sum_to_the_wall_time(seed: int, steps: int, every: int,
                                    evals: int | None, elapse_h: float, spares: int,
                                    shrink: bool) -> None:
    plan = CampaignPlan(
        steps=steps, step=Fixed(60.0), nodes=8, dp=4, checkpoint_every=every,
        write_s=30.0, eval_every=evals, eval_steps=0.5, startup_s=300.0,
        restore=Restore(per_replica_s=20.0), elapse_s=elapse_h * 3600.0,
        queue=Fixed(600.0), failures=NodeFailures(8 * 5 * 3600.0, shape=0.8),
        spare_nodes=spares, shrink_dp_min=2 if shrink else None,
    )
    result = simulate(plan, np.random.default_rng(seed))
    assert result.finished
    assert sum(result.parts_s.values()) == pytest.approx(result.wall_s, rel=1e-9)
    assert set(result.parts_s) == set(PARTS)
    # the lower bound is one uninterrupted job: no queue, no failures and no elapsed limit.
    # (Not the same plan without failures: a failure moves where later jobs hit their limit
    # relative to their checkpoints, and can lose less work at the limits than none did;
    # hypothesis found seed 707, 138 steps, a checkpoint every 23, 3-h jobs.)
    base = replace(plan, failures=NoFailures(), queue=Fixed(0.0), elapse_s=math.inf)
    assert result.wall_s >= simulate(base, np.random.default_rng(seed)).wall_s - 1e-6


def test_replicas_sharing_a_node_count_whole_nodes() -> None:
    """4 replicas on 2 nodes (several replicas per node): 1 replica occupies 1 whole node, all
    4 occupy 2; the failure process runs on the nodes in use (was a division by zero)."""
    plan = CampaignPlan(steps=10, step=Fixed(1.0), nodes=2, dp=4)
    assert [plan.nodes_for(dp) for dp in (4, 3, 2, 1)] == [2, 2, 1, 1]
    failing = replace(plan, failures=NodeFailures(mtbf_node_s=1e6))
    assert simulate(failing, np.random.default_rng(0)).wall_s >= 10.0
