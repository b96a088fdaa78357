"""Monte Carlo over seeds: the spread of a campaign's wall time, node-hours, lost work, jobs.

Seed i of a batch is ``numpy.random.default_rng(first_seed + i)``, so any sampled campaign
can be run again alone (with its trace, for a chart). A campaign that did not finish (failures
outpacing its checkpoints) counts as infinitely long; quantiles then come from the sorted
values without interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fugaku_sim.sim.campaign import PARTS, CampaignPlan, CampaignResult, simulate

QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
#: per-campaign figures summarised, with their units in the names
METRICS = ("wall_days", "node_hours", "lost_h", "jobs", "failures", "step_s")


def quantiles(values: np.ndarray) -> dict[str, float]:
    """p10, p50, p90 and the mean of ``values`` (inf stays inf)."""
    method: Literal["linear", "inverted_cdf"] = (
        "linear" if np.all(np.isfinite(values)) else "inverted_cdf")
    out = {k: float(np.quantile(values, q, method=method)) for k, q in QUANTILES.items()}
    out["mean"] = float(np.mean(values))
    return out


def json_number(x: float) -> float | None:
    """JSON has no infinity: an unfinished campaign's figures become null."""
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class CampaignSummary:
    """The sampled campaigns of one plan."""

    results: list[CampaignResult]
    first_seed: int = 0

    def values(self, metric: str) -> np.ndarray:
        return np.array([float(getattr(r, metric)) for r in self.results])

    def quantiles(self, metric: str) -> dict[str, float]:
        return quantiles(self.values(metric))

    @property
    def finished_fraction(self) -> float:
        return sum(r.finished for r in self.results) / len(self.results)

    def mean_parts_h(self) -> dict[str, float]:
        """Mean hours of each part of the wall time over the finished campaigns."""
        done = [r for r in self.results if r.finished] or self.results
        return {k: float(np.mean([r.parts_s[k] for r in done])) / 3600.0 for k in PARTS}

    def median_seed(self) -> int:
        """The seed of the campaign whose wall time is the median (the lower of two)."""
        walls = self.values("wall_s")
        order = np.argsort(walls, kind="stable")
        return self.first_seed + int(order[(len(order) - 1) // 2])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seeds": len(self.results),
            "first_seed": self.first_seed,
            "finished_fraction": self.finished_fraction,
        }
        for metric in METRICS:
            out[metric] = {k: json_number(v) for k, v in self.quantiles(metric).items()}
        out["mean_parts_h"] = self.mean_parts_h()
        return out


def run_campaigns(
    plan: CampaignPlan,
    seeds: int,
    first_seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> CampaignSummary:
    """Sample ``seeds`` campaigns of ``plan``; ``progress(done)`` after each."""
    results = []
    for i in range(seeds):
        results.append(simulate(plan, np.random.default_rng(first_seed + i)))
        if progress is not None:
            progress(i + 1)
    return CampaignSummary(results, first_seed)
