"""Goal-seek: how much of the machine a run needs to meet a deadline or a budget.

A layer on the plan's layout search (:func:`fugaku_sim.sim.plan.plan_layouts`, called once per
node count) and the campaign (:mod:`fugaku_sim.sim.campaign_costs`,
:mod:`fugaku_sim.sim.montecarlo`):

1. **The ladder of node counts.** A node count is allowed when a resource group of the machine
   takes it and the model splits over it: ``nodes x processes per node = tp pp dp`` with the
   plan's rules for tp and pp (:func:`fugaku_sim.sim.plan.parallel_degrees`) and dp dividing
   the global batch. From ``nodes_min`` to ``nodes_max`` the ladder takes, for each target of a
   geometric series of ratio sqrt(2) (two rungs per doubling), the allowed count nearest to it
   in log scale, plus the smallest and the largest allowed count. Defaults: ``nodes_max`` the
   largest job the machine accepts; ``nodes_min`` the larger of where the model's weights,
   gradients and optimizer states alone fill the nodes' usable memory and where even 100% of
   the peak would take longer than the deadline (without a deadline: a year).
2. **Per node count**, the plan's fastest layout (predicted in order of a lower bound of the
   step, :mod:`fugaku_sim.sim.step_bound`, so most layouts of a rung are never simulated),
   then its campaign under the policy (the model preset's ``campaign:`` section and the
   options; a job asks for its resource group's elapsed limit unless told otherwise), sampled
   over ``seeds`` seeds: p10/p50/p90 of days and node-hours.
3. **The Pareto front**: the node counts no other count beats on p50 days, p90 days and p50
   node-hours at once. **The choice**: with a deadline, the smallest allocation whose p90 days
   meet it (and whose p90 node-hours stay within the budget, if one is given); with a budget
   alone, the fastest (p90 days) whose p90 node-hours stay within it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.sim.campaign import CampaignPlan
from fugaku_sim.sim.campaign_costs import (
    Interval,
    ShrinkStep,
    group_elapse_settings,
    plan_campaign,
)
from fugaku_sim.sim.flops import model_flops_per_token, parameter_count
from fugaku_sim.sim.memory import parameter_bytes
from fugaku_sim.sim.montecarlo import CampaignSummary, json_number, run_campaigns
from fugaku_sim.sim.plan import divisors, no_layout_message, parallel_degrees, plan_layouts
from fugaku_sim.sim.predict import Prediction
from fugaku_sim.sim.step_bound import FastModeBound
from fugaku_sim.spec import ClusterSpec, ModelSpec, TrainSpec
from fugaku_sim.spec.campaign import CampaignSettings
from fugaku_sim.spec.figures import run_steps
from fugaku_sim.spec.stack import StackSpec

#: ratio of neighbouring rungs of the ladder: two rungs per doubling of the node count
LADDER_RATIO = math.sqrt(2.0)
#: without a deadline, node counts that would need longer than this at 100% of peak are left out
HORIZON_DAYS = 365.0
#: the quantile a deadline or budget must hold at ("with 90% probability")
GOAL_QUANTILE = "p90"


@dataclass(frozen=True)
class Goal:
    """What the run must meet: days to the token target and/or node-hours (None: no limit)."""

    deadline_days: float | None = None
    budget_node_hours: float | None = None


def allowed_node_counts(cluster: ClusterSpec, model: ModelSpec, train: TrainSpec,
                        lo: int, hi: int) -> list[int]:
    """Node counts in [lo, hi] a resource group takes and the model splits over, ascending."""
    ppn = cluster.node.processes_per_node
    # every (tp, pp) the plan allows divides heads x layers: one call lists them all
    model_parallel = {tp * pp for tp, pp, _ in parallel_degrees(model, model.heads * model.layers)}
    counts = set()
    for mp in model_parallel:
        for dp in divisors(train.global_batch):
            ranks = mp * dp
            if ranks % ppn == 0 and lo <= ranks // ppn <= hi:
                counts.add(ranks // ppn)
    return sorted(n for n in counts if cluster.allocation.kinds_for(n))


def ladder(counts: list[int], lo: int, hi: int, ratio: float = LADDER_RATIO) -> list[int]:
    """The allowed ``counts`` nearest (in log scale) to lo, lo r, lo r^2, ... up to hi, with
    the first and last allowed count.

    >>> ladder([12, 24, 36, 48, 96, 120, 192, 384], 12, 384, ratio=2.0)
    [12, 24, 48, 96, 192, 384]
    """
    if not counts:
        return []
    rungs = {counts[0], counts[-1]}
    steps = math.ceil(math.log(hi / lo) / math.log(ratio)) if hi > lo else 0
    for k in range(steps + 1):
        target = min(hi, lo * ratio**k)
        rungs.add(min(counts, key=lambda n: abs(math.log(n / target))))
    return sorted(rungs)


def nodes_floor(cluster: ClusterSpec, model: ModelSpec, train: TrainSpec,
                deadline_days: float | None) -> int:
    """The fewest nodes worth trying: model states must fit the usable memory, and 100% of
    peak must finish within the deadline (or :data:`HORIZON_DAYS`)."""
    w, g, o = parameter_bytes(train)
    states = parameter_count(model) * (w + g + o)
    memory = states / cluster.node.usable_mem_bytes
    steps = run_steps(train, model) or 0
    flops = model_flops_per_token(model) * steps * train.global_batch * model.seq_len
    days = deadline_days if deadline_days is not None else HORIZON_DAYS
    compute = flops / (cluster.node.peak_flops(train.precision) * days * 86400.0)
    return max(1, math.ceil(max(memory, compute)))


@dataclass(frozen=True)
class Point:
    """One node count: its fastest layout and that layout's campaign."""

    prediction: Prediction
    plan: CampaignPlan
    interval: Interval
    summary: CampaignSummary
    settings: CampaignSettings
    predicted: int
    pruned: int

    @property
    def nodes(self) -> int:
        return self.prediction.job.nodes

    @property
    def allocated_nodes(self) -> int:
        return self.plan.allocated_nodes

    def q(self, metric: str, key: str) -> float:
        return self.summary.quantiles(metric)[key]

    def meets(self, goal: Goal) -> bool:
        """Deadline and budget both held at :data:`GOAL_QUANTILE`."""
        days, hours = self.q("wall_days", GOAL_QUANTILE), self.q("node_hours", GOAL_QUANTILE)
        return ((goal.deadline_days is None or days <= goal.deadline_days)
                and (goal.budget_node_hours is None or hours <= goal.budget_node_hours))

    def to_json(self) -> dict[str, Any]:
        pred, lay = self.prediction, self.prediction.job.layout
        out: dict[str, Any] = {
            "nodes": self.nodes, "allocated_nodes": self.allocated_nodes,
            "tp": lay.tp, "pp": lay.pp, "dp": lay.dp,
            "micro_batch": pred.job.train.micro_batch,
            "recompute_stages": sorted(pred.job.recompute_stages),
            "placement": lay.placement, "job_shape": "x".join(map(str, pred.shape)),
            "allocation": pred.allocation.kind, "step_time_s": pred.step_time_s,
            "mfu": pred.mfu, "layouts_predicted": self.predicted, "layouts_pruned": self.pruned,
            "elapse_h": self.plan.elapse_s / 3600.0, "checkpoint_every": self.interval.steps,
        }
        for metric in ("wall_days", "node_hours", "jobs", "failures"):
            out[metric] = {k: json_number(v) for k, v in self.summary.quantiles(metric).items()}
        return out


@dataclass
class GoalResult:
    """Every rung's point, the rungs skipped and why, the front and the choice."""

    goal: Goal
    counts: list[int]
    points: list[Point] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)

    def front(self) -> list[Point]:
        """Points no other point beats on p50 days, p90 days and p50 node-hours, by nodes."""
        keys = [(p.q("wall_days", "p50"), p.q("wall_days", "p90"), p.q("node_hours", "p50"))
                for p in self.points]
        return [p for p, k in zip(self.points, keys)
                if not any(all(a <= b for a, b in zip(o, k)) and o != k for o in keys)]

    def choice(self) -> Point:
        """The allocation the goal asks for (see the module docstring).

        Raises:
            UserError: no point meets the goal; names the best reachable figure.
        """
        goal, points = self.goal, self.points
        ok = [p for p in points if p.meets(goal)]
        if ok:
            if goal.deadline_days is not None:
                return min(ok, key=lambda p: (p.allocated_nodes, p.q("wall_days", GOAL_QUANTILE)))
            return min(ok, key=lambda p: p.q("wall_days", GOAL_QUANTILE))
        raise UserError(self._miss_message())

    def cheapest(self) -> Point | None:
        """The point meeting the goal with the fewest p90 node-hours (None: no point does);
        with a deadline it may be larger, and faster, than the choice."""
        ok = [p for p in self.points if p.meets(self.goal)]
        return min(ok, key=lambda p: p.q("node_hours", GOAL_QUANTILE)) if ok else None

    def to_json(self, choice: Point) -> dict[str, Any]:
        """Every point (flagged ``pareto`` and ``meets_goal``), the skipped counts, the front's
        node counts, the choice, and the choice's layout record at the top level (what
        ``--layout-from`` reads)."""
        front = {p.nodes for p in self.front()}

        def flagged(p: Point) -> dict[str, Any]:
            return p.to_json() | {"pareto": p.nodes in front, "meets_goal": p.meets(self.goal)}

        points = [flagged(p) for p in self.points]
        return {
            "goal": {"deadline_days": self.goal.deadline_days,
                     "budget_node_hours": self.goal.budget_node_hours,
                     "quantile": GOAL_QUANTILE},
            "node_counts": self.counts,
            "points": points,
            "skipped": [{"nodes": n, "reason": r} for n, r in self.skipped.items()],
            "pareto_nodes": sorted(front),
            "choice": flagged(choice),
            "cheapest_meeting_goal_nodes": cheapest.nodes if (cheapest := self.cheapest()) else None,
            **choice.prediction.record.to_json(),
        }

    def _miss_message(self) -> str:
        goal, points, q = self.goal, self.points, GOAL_QUANTILE
        span = (f"{self.counts[0]:,}-{self.counts[-1]:,} nodes" if len(self.counts) > 1
                else f"{self.counts[0]:,} nodes")
        fastest = min(points, key=lambda p: p.q("wall_days", q))
        if goal.deadline_days is not None and fastest.q("wall_days", q) > goal.deadline_days:
            return (f"--deadline: no allocation of {span} finishes within {goal.deadline_days:g} "
                    f"days with 90% probability; the best reachable {q} is "
                    f"{fastest.q('wall_days', q):.1f} days ({fastest.allocated_nodes:,} nodes)")
        timely = [p for p in points if goal.deadline_days is None
                  or p.q("wall_days", q) <= goal.deadline_days]
        cheapest = min(timely, key=lambda p: p.q("node_hours", q))
        within = "" if goal.deadline_days is None else \
            f" among those that meet the {goal.deadline_days:g}-day deadline"
        return (f"--budget: no allocation of {span}{within} stays within "
                f"{goal.budget_node_hours:,.0f} node-hours with 90% probability; the cheapest "
                f"{q} is {cheapest.q('node_hours', q):,.0f} node-hours "
                f"({cheapest.allocated_nodes:,} nodes)")


@dataclass(frozen=True)
class Sampling:
    """How each rung's campaign is run: seeds, whether ``--elapse-h`` was the user's, the
    step after shrinking (:func:`fugaku_sim.sim.campaign_costs.plan_campaign`)."""

    seeds: int
    first_seed: int = 0
    elapse_given: bool = False
    shrink: ShrinkStep = "scale"


def campaign_point(pred: Prediction, settings: CampaignSettings, sampling: Sampling,
                   predicted: int = 1, pruned: int = 0) -> Point:
    """The campaign of one layout (raises UserError when its jobs cannot save work)."""
    fitted = group_elapse_settings(pred, settings, sampling.elapse_given)
    plan, interval = plan_campaign(pred, fitted, shrink=sampling.shrink)
    summary = run_campaigns(plan, sampling.seeds, sampling.first_seed)
    return Point(pred, plan, interval, summary, fitted, predicted, pruned)


def seek(cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, settings: CampaignSettings,
         goal: Goal, counts: Iterable[int], sampling: Sampling,
         progress: Callable[[int, str], None] | None = None, engine: str = "sim",
         stack: StackSpec | None = None) -> GoalResult:
    """Plan and campaign every node count of ``counts`` (on ``stack``); ``progress(nodes,
    note)`` after each.
    ``engine="train"``: only layouts this tool's trainer runs (:func:`plan_layouts`).

    Raises:
        UserError: no node count has a layout whose campaign can run (the first reason).
    """
    result = GoalResult(goal, list(counts))
    for nodes in result.counts:
        plan = plan_layouts(cluster, model, train, nodes, engine=engine, best=1,
                            bound=FastModeBound(), stack=stack)
        if not plan.predictions:
            result.skipped[nodes] = no_layout_message(plan, cluster, nodes)
        else:
            try:
                result.points.append(campaign_point(
                    plan.predictions[0], settings, sampling, len(plan.predictions), plan.pruned))
            except UserError as exc:
                result.skipped[nodes] = str(exc)
        if progress is not None:
            progress(nodes, result.skipped.get(nodes, ""))
    if not result.points:
        first = next(iter(result.skipped.values()), "no node counts to try")
        raise UserError(f"goal-seek: no node count of {len(result.counts)} tried can run: {first}")
    return result
