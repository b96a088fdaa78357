"""Monte Carlo summaries: quantiles, unfinished campaigns, reproducible seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fugaku_sim.sim.campaign import CampaignPlan, simulate
from fugaku_sim.sim.distributions import Fixed, NodeFailures, Quantiles
from fugaku_sim.sim.montecarlo import json_number, quantiles, run_campaigns

PLAN = CampaignPlan(steps=500, step=Quantiles(9.0, 10.0, 12.0), nodes=64, dp=16,
                    checkpoint_every=50, write_s=20.0, startup_s=60.0, elapse_s=3600.0,
                    queue=Quantiles.lognormal(600.0, 3600.0),
                    failures=NodeFailures(64 * 2 * 3600.0))


def test_quantiles_of_known_values() -> None:
    q = quantiles(np.arange(1.0, 12.0))
    assert (q["p10"], q["p50"], q["p90"], q["mean"]) == (2.0, 6.0, 10.0, 6.0)
    unfinished = quantiles(np.array([1.0, 2.0, 3.0, math.inf]))
    assert unfinished["p50"] == 2.0 and unfinished["p90"] == math.inf
    assert json_number(math.inf) is None


def test_summary_is_json_and_reproducible() -> None:
    summary = run_campaigns(PLAN, 200, first_seed=5)
    doc = json.loads(json.dumps(summary.to_json()))
    assert doc["seeds"] == 200 and doc["finished_fraction"] == 1.0
    wall = doc["wall_days"]
    assert wall["p10"] <= wall["p50"] <= wall["p90"]
    # the step time is drawn once per campaign, from its quantiles
    assert doc["step_s"]["p50"] == pytest.approx(10.0, rel=0.05)
    seed = summary.median_seed()
    again = simulate(PLAN, np.random.default_rng(seed))
    assert again.wall_days == pytest.approx(wall["p50"], rel=0.02)
    assert again.wall_s == summary.results[seed - 5].wall_s


def test_progress_is_reported() -> None:
    seen: list[int] = []
    run_campaigns(CampaignPlan(steps=3, step=Fixed(1.0), nodes=1, dp=1), 4, progress=seen.append)
    assert seen == [1, 2, 3, 4]
