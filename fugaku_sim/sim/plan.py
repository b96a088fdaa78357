"""Plan: every valid layout of a model on a node count, pruned by memory, ranked by throughput.

Enumerated: tensor degree t dividing the heads and the MLP width, and dividing or a multiple
of the key/value heads (:func:`fugaku_sim.spec.job.kv_heads_fit`); pipeline degree p dividing
the layers; data degree d = nodes x ppn / (t p); micro-batch sizes b (1, 2, 4, 8 and any
other divisor up to 8 of the per-replica batch) with b d dividing the global batch;
placement topology / linear; the 1F1B schedule (and the interleaved one with 2 chunks when
asked); sequence parallelism off / on (t > 1); ZeRO stage 0 to 3 (1 to 3 only with d > 1;
2 and 3 only with p = 1, as DeepSpeed runs them: its pipeline engine takes ZeRO up to stage
1 -- ``predict`` still prices ZeRO-2 with pipeline stages); recomputation
(:data:`RECOMPUTE`): none, selective, full on the first half of the stages, full there and
selective on the rest, full everywhere. The job shape is
chosen per layout (:func:`fugaku_sim.sim.allocation.resolve_allocation`).

Layouts that do not fit the node's usable memory are dropped before simulation. So is a
recomputation that recomputes at least as much on every stage as another that fits, with
everything else equal: recomputing more never shortens a pass, so in this model such a
layout is never faster (contention between collectives aside), only smaller, and it already
fits. The rest are predicted (fast mode) and sorted by tokens per second.

The placement and priced collectives of a (t, p, d, placement) are computed once and
shared by its other variants.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.memory import GiB, fits_memory, peak_memory_per_node, stage_recomputation
from fugaku_sim.sim.predict import Prediction, Setup, predict, prepare
from fugaku_sim.spec import ClusterSpec, Layout, ModelSpec, TrainSpec, make_job
from fugaku_sim.spec.figures import sequences_per_replica
from fugaku_sim.spec.job import Job, check_modelled, kv_heads_fit
from fugaku_sim.spec.stack import StackSpec

PLACEMENTS = ("topology", "linear")
#: (recompute, full recomputation on the first half of the stages): what the plan tries
RECOMPUTE = (("none", False), ("selective", False), ("first-half", False),
             ("selective", True), ("all", False))
#: how much a stage recomputes, for the dominance rule
LEVEL = {"none": 0, "selective": 1, "full": 2}
#: the reason a dominated layout is counted under
DOMINATED = "recomputes more than a layout that fits (never faster)"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def micro_batch_sizes(per_replica: int, limit: int = 8) -> list[int]:
    """Micro-batch sizes that divide the per-replica batch, up to ``limit``."""
    return [b for b in range(1, min(per_replica, limit) + 1) if per_replica % b == 0]


def parallel_degrees(model: ModelSpec, ranks: int) -> Iterator[tuple[int, int, int]]:
    """(tp, pp, dp) with tp | heads and ffn, the key/value heads split over or copied onto the
    tp ranks, pp | layers, tp pp dp = ranks."""
    for tp in divisors(model.heads):
        if model.ffn % tp or not kv_heads_fit(model, tp):
            continue
        for pp in divisors(model.layers):
            if ranks % (tp * pp) == 0:
                yield tp, pp, ranks // (tp * pp)


def first_half(pp: int) -> list[int]:
    """Stages 0 .. pp / 2 - 1 (Fugaku-LLM's recomputed stages 0-3 of 8)."""
    return list(range(max(1, pp // 2)))


@dataclass
class PlanResult:
    """Predictions best first, and what was left out and why."""

    predictions: list[Prediction]
    considered: int = 0
    too_big: list[tuple[float, Job]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    setups: dict[tuple[Any, ...], Setup] = field(default_factory=dict)  # by setup_key
    pruned: int = 0  # layouts not predicted: their bound reaches the best wanted

    def setup_of(self, pred: Prediction) -> Setup:
        """The placed job a prediction ran on (for its intervals)."""
        return self.setups[setup_key(pred.job)]

    def smallest_memory(self) -> tuple[float, Job] | None:
        return min(self.too_big, key=lambda x: x[0]) if self.too_big else None

    def reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1


def train_variants(train: TrainSpec, pp: int, dp: int, b: int) -> Iterator[TrainSpec]:
    """The training settings tried for one layout: ZeRO stages, then recomputations."""
    zeros = [0] if dp == 1 else [0, 1, 2, 3] if pp == 1 else [0, 1]
    for zero, (rec, half) in itertools.product(zeros, RECOMPUTE):
        if pp == 1 and (rec == "first-half" or half):
            continue  # the first half of one stage is the whole of it: "all"
        update = {"micro_batch": b, "zero_stage": zero, "recompute": rec,
                  "recompute_stages": first_half(pp) if half else []}
        yield TrainSpec.model_validate(train.model_copy(update=update).model_dump())


def candidate_groups(
    cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, nodes: int, interleaved: bool = False,
    stack: StackSpec | None = None,
) -> Iterator[list[Job | str]]:
    """Every valid job for ``nodes`` (on ``stack``), in groups that differ only in
    recomputation; a string names why a combination was invalid."""
    ppn = cluster.node.processes_per_node
    # on one node every placement is the same: predict it once
    placements = PLACEMENTS if nodes > 1 else ("topology",)
    for tp, pp, dp in parallel_degrees(model, nodes * ppn):
        if train.global_batch % dp:
            yield ["global batch not divisible by dp"]
            continue
        schedules: list[tuple[str, int]] = [("1f1b", 1)]
        if interleaved and pp > 1 and model.layers % (2 * pp) == 0:
            schedules.append(("interleaved", 2))
        sps = [False, True] if tp > 1 and model.seq_len % tp == 0 else [False]
        for b, place, (sched, v), sp in itertools.product(
            micro_batch_sizes(sequences_per_replica(train, dp)), placements, schedules, sps
        ):
            lay = Layout(tp=tp, pp=pp, dp=dp, placement=place, schedule=sched,  # type: ignore[arg-type]
                         virtual_stages=v, sequence_parallel=sp)
            groups: dict[int, list[Job | str]] = {}
            for t in train_variants(train, pp, dp, b):
                try:
                    job: Job | str = make_job(cluster, model, t, lay, stack)
                except SpecError as exc:
                    job = str(exc).split(":")[0]
                groups.setdefault(t.zero_stage, []).append(job)
            yield from groups.values()


def least_recomputing(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(kept, dominated): a job is dominated when another recomputes no more on any stage
    and less on some."""
    levels = {id(j): [LEVEL[stage_recomputation(j, s)] for s in range(j.layout.pp)]
              for j in jobs}

    def below(a: Job, b: Job) -> bool:
        la, lb = levels[id(a)], levels[id(b)]
        return la != lb and all(x <= y for x, y in zip(la, lb))

    kept = [j for j in jobs if not any(below(o, j) for o in jobs)]
    return kept, [j for j in jobs if j not in kept]


class StepBound(Protocol):
    """Lower bounds of a job's predicted step time, seconds: before and after placement
    (``tight`` may stop early, with any value >= ``cutoff_s``, once it reaches ``cutoff_s``)."""

    def quick(self, job: Job) -> float: ...

    def tight(self, job: Job, setup: Setup, cutoff_s: float) -> float: ...


def plan_layouts(
    cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, nodes: int,
    interleaved: bool = False, engine: str = "sim",
    progress: Callable[[int, int], None] | None = None,
    best: int | None = None, bound: StepBound | None = None, stack: StackSpec | None = None,
) -> PlanResult:
    """Predict every valid layout that fits memory (on ``stack``); best (most tokens/s)
    first. With
    ``engine="train"``, only layouts the trainer runs (a training run's plan).
    ``progress(done, total)`` after each layout taken (total: the layouts kept).

    With ``best`` = k and a ``bound`` (:class:`fugaku_sim.sim.step_bound.FastModeBound`), only
    the k fastest are wanted: layouts are taken in order of their quick bound, the search stops
    once it reaches the k-th best step time found, and a layout whose tight bound reaches it is
    not predicted (both counted in ``pruned``). The k fastest are the same as without pruning.
    """
    result = PlanResult([])
    kept_jobs: list[Job] = []
    for group in candidate_groups(cluster, model, train, nodes, interleaved, stack):
        fitting = []
        for job in group:
            result.considered += 1
            if isinstance(job, str):
                result.reject(job)
                continue
            if engine != "sim":
                try:
                    check_modelled(job.model, job.train, job.layout, engine)
                except SpecError as exc:
                    result.reject(str(exc))
                    continue
            peak = peak_memory_per_node(job)
            if not fits_memory(job, peak):
                result.too_big.append((peak, job))
                continue
            fitting.append(job)
        kept, dominated = least_recomputing(fitting)
        for _ in dominated:
            result.reject(DOMINATED)
        kept_jobs += kept
    ranked = sorted(((bound.quick(j) if bound and best else 0.0, j) for j in kept_jobs),
                    key=lambda x: x[0])
    setups = result.setups
    for i, (quick_s, job) in enumerate(ranked):
        if progress is not None:
            progress(i, len(ranked))
        times = sorted(p.step_time_s for p in result.predictions)
        kth = times[best - 1] if best and len(times) >= best else None
        if bound is not None and kth is not None and quick_s >= kth:
            result.pruned += len(ranked) - i
            break
        key = setup_key(job)
        try:
            if key not in setups:
                setups[key] = prepare(job)
            if bound is not None and kth is not None and bound.tight(job, setups[key], kth) >= kth:
                result.pruned += 1
                continue
            result.predictions.append(predict(job, setup=setups[key]))
        except UserError as exc:
            result.reject(str(exc))
    if progress is not None:
        progress(len(kept_jobs), len(kept_jobs))
    result.predictions.sort(key=lambda p: p.step_time_s / p.job.global_batch_tokens)
    return result


def setup_key(job: Job) -> tuple[Any, ...]:
    """What a placed job depends on: the split and where its ranks go."""
    lay = job.layout
    return (lay.tp, lay.pp, lay.dp, lay.placement, lay.rank_order)


def trainer_runnable(predictions: list[Prediction]) -> tuple[int, Prediction | None, str]:
    """(rank from 1, prediction) of the best layout this tool's trainer runs (a job script
    runs the trainer), and why the first one does not ("" if it does)."""
    why = ""
    for rank, p in enumerate(predictions, 1):
        job = p.job
        try:
            check_modelled(job.model, job.train, job.layout, "train")
        except SpecError as exc:
            why = why or str(exc)
            continue
        return rank, p, why
    return 0, None, why


def no_layout_message(result: PlanResult, cluster: ClusterSpec, nodes: int) -> str:
    """The one-line reason a plan found nothing."""
    usable = cluster.node.usable_mem_bytes / GiB
    smallest = result.smallest_memory()
    if smallest is not None:
        mem, job = smallest
        lay, t = job.layout, job.train
        return (
            f"no layout fits {usable:.1f} GiB per node: the smallest needs {mem / GiB:.1f} GiB "
            f"(tp={lay.tp}, pp={lay.pp}, dp={lay.dp}, micro-batch {t.micro_batch}, "
            f"recompute {t.recompute}, ZeRO-{t.zero_stage}, "
            f"sequence parallel {'on' if lay.sequence_parallel else 'off'})"
        )
    why = "; ".join(f"{k} ({v})" for k, v in sorted(result.rejected.items())) or "no candidates"
    return f"no valid layout on {nodes} nodes: {why}"
