"""Plan: every valid layout of a model on a node count, pruned by memory, ranked by throughput.

Enumerated: tensor degree t dividing the heads and the MLP width; pipeline degree p dividing
the layers; data degree d = nodes x ppn / (t p); micro-batch sizes b (1, 2, 4, 8 and any
other divisor up to 8 of the per-replica batch) with b d dividing the global batch;
recomputation none / first half of the stages / all; placement topology / linear; the 1F1B
schedule (and the interleaved one with 2 chunks when asked). The job shape is chosen per
layout (:func:`fugaku_sim.sim.allocation.resolve_allocation`). Layouts that do not fit the node's
usable memory are dropped before simulation; the rest are predicted (fast mode) and sorted
by tokens per second.

The placement and priced collectives of a (t, p, d, placement) are computed once and
shared by its micro-batch and recomputation variants.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.memory import GiB, fits_memory, peak_memory_per_node
from fugaku_sim.sim.predict import Prediction, Setup, predict, prepare
from fugaku_sim.spec import ClusterSpec, Layout, ModelSpec, TrainSpec, make_job
from fugaku_sim.spec.figures import sequences_per_replica
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.stack import StackSpec

RECOMPUTE = ("none", "first-half", "all")
PLACEMENTS = ("topology", "linear")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def micro_batch_sizes(per_replica: int, limit: int = 8) -> list[int]:
    """Micro-batch sizes that divide the per-replica batch, up to ``limit``."""
    return [b for b in divisors(per_replica) if b <= limit]


def parallel_degrees(model: ModelSpec, ranks: int) -> Iterator[tuple[int, int, int]]:
    """(tp, pp, dp) with tp | heads and ffn, pp | layers, tp pp dp = ranks."""
    for tp in divisors(model.heads):
        if model.ffn % tp:
            continue
        for pp in divisors(model.layers):
            if ranks % (tp * pp) == 0:
                yield tp, pp, ranks // (tp * pp)


@dataclass
class PlanResult:
    """Predictions best first, and what was left out and why."""

    predictions: list[Prediction]
    considered: int = 0
    too_big: list[tuple[float, Job]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    setups: dict[tuple[Any, ...], Setup] = field(default_factory=dict)  # by setup_key

    def setup_of(self, pred: Prediction) -> Setup:
        """The placed job a prediction ran on (for its intervals)."""
        return self.setups[setup_key(pred.job)]

    def smallest_memory(self) -> tuple[float, Job] | None:
        return min(self.too_big, key=lambda x: x[0]) if self.too_big else None


def candidate_jobs(
    cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, nodes: int, interleaved: bool = False,
    stack: StackSpec | None = None,
) -> Iterator[Job | str]:
    """Every valid job for ``nodes`` (on ``stack``); a string names why a combination was
    invalid."""
    ppn = cluster.node.processes_per_node
    # on one node every placement is the same: predict it once
    placements = PLACEMENTS if nodes > 1 else ("topology",)
    for tp, pp, dp in parallel_degrees(model, nodes * ppn):
        if train.global_batch % dp:
            yield "global batch not divisible by dp"
            continue
        schedules: list[tuple[str, int]] = [("1f1b", 1)]
        if interleaved and pp > 1 and model.layers % (2 * pp) == 0:
            schedules.append(("interleaved", 2))
        for b, rec, place, (sched, v) in itertools.product(
            micro_batch_sizes(sequences_per_replica(train, dp)), RECOMPUTE, placements, schedules
        ):
            if rec == "first-half" and pp == 1:
                continue
            t = train.model_copy(
                update={"micro_batch": b, "recompute": rec, "recompute_stages": []}
            )
            lay = Layout(tp=tp, pp=pp, dp=dp, placement=place, schedule=sched, virtual_stages=v)  # type: ignore[arg-type]
            try:
                yield make_job(cluster, model, TrainSpec.model_validate(t.model_dump()), lay,
                               stack)
            except SpecError as exc:
                yield str(exc).split(":")[0]


def plan_layouts(
    cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, nodes: int, interleaved: bool = False,
    stack: StackSpec | None = None,
) -> PlanResult:
    """Predict every valid layout that fits memory (on ``stack``); best (most tokens/s)
    first."""
    result = PlanResult([])
    setups = result.setups
    for job in candidate_jobs(cluster, model, train, nodes, interleaved, stack):
        result.considered += 1
        if isinstance(job, str):
            result.rejected[job] = result.rejected.get(job, 0) + 1
            continue
        peak = peak_memory_per_node(job)
        if not fits_memory(job, peak):
            result.too_big.append((peak, job))
            continue
        key = setup_key(job)
        try:
            if key not in setups:
                setups[key] = prepare(job)
            result.predictions.append(predict(job, setup=setups[key]))
        except UserError as exc:
            result.rejected[str(exc)] = result.rejected.get(str(exc), 0) + 1
    result.predictions.sort(key=lambda p: p.step_time_s / p.job.global_batch_tokens)
    return result


def setup_key(job: Job) -> tuple[Any, ...]:
    """What a placed job depends on: the split and where its ranks go."""
    lay = job.layout
    return (lay.tp, lay.pp, lay.dp, lay.placement, lay.rank_order)


def no_layout_message(result: PlanResult, cluster: ClusterSpec, nodes: int) -> str:
    """The one-line reason a plan found nothing."""
    usable = cluster.node.usable_mem_bytes / GiB
    smallest = result.smallest_memory()
    if smallest is not None:
        mem, job = smallest
        lay = job.layout
        return (
            f"no layout fits {usable:.1f} GiB per node: the smallest needs {mem / GiB:.1f} GiB "
            f"(tp={lay.tp}, pp={lay.pp}, dp={lay.dp}, micro-batch {job.train.micro_batch}, "
            f"recompute {job.train.recompute})"
        )
    why = "; ".join(f"{k} ({v})" for k, v in sorted(result.rejected.items())) or "no candidates"
    return f"no valid layout on {nodes} nodes: {why}"
