"""A lower bound of a job's fast-mode step time, an order of magnitude cheaper than the engine.

The fast-mode engine (:class:`fugaku_sim.sim.engine.PipelineEngine` over
:class:`fugaku_sim.sim.transport.AnalyticTransport`) runs each pipeline stage as one process
whose operations take their time one after another: a pass (forward, backward, or the forward
recomputed before a backward) is its compute plus its tensor-parallel all-reduces, each op
then blocks on its send to the neighbour stage, and after the last op the stage all-reduces
its gradients (unless that overlaps the last backward) and steps its optimizer. Priced with
the same functions and plans (:func:`fugaku_sim.sim.segments.stage_segments` and
:func:`~fugaku_sim.sim.segments.time_pass`, the transport's ``tp_time_s``, ``dp_time_s``,
``p2p_time_s`` and ``grad_sync_time_s``), two bounds follow, and the step is at
least the larger:

- **busy stage**: no stage finishes before ``m`` micro-batches of its own passes and sends
  and its optimizer step (``m`` micro-batches per replica; stage 0: and its gradient
  all-reduce, the only one priced);
- **pipeline fill and drain** (1F1B and GPipe, one model chunk per stage): stage s cannot
  start before the first micro-batch's forwards and sends through stages 0 .. s-1, and the
  gradient of its last micro-batch must then return through their backwards (with
  recomputation) before stage 0 all-reduces and steps.

The software stack enters through the same functions (its efficiencies in the ops' and the
collectives' prices), and its fixed overheads are added as the engine adds them.

Left out, so the result stays a bound: the idle time between passes beyond the fill and
drain, the tied-embedding all-reduce, the copied key/value heads' gradient sum, ZeRO-1/2's
weight all-gather and waiting for a neighbour's arrival. Per layer and per
stage pair everything is priced once and multiplied, so the bound costs about a millisecond
where predicting a job with many micro-batches or stages costs a tenth of a second or more.
``tests/sim/test_step_bound.py`` checks it against the engine for every candidate of several
plans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from fugaku_sim.parallel import ModelChunk
from fugaku_sim.sim.comm import CommModel
from fugaku_sim.sim.compute import optimizer_time_s
from fugaku_sim.sim.engine import gradient_reduction
from fugaku_sim.sim.predict import Setup
from fugaku_sim.sim.segments import Segment, p2p_message_bytes, stage_segments, time_pass
from fugaku_sim.sim.transport import grad_bytes, stack_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import layout_chunks, stage_parameters, stage_tensor_count


@dataclass(frozen=True)
class StagePasses:
    """Seconds of one micro-batch's passes and sends on one stage (all its chunks)."""

    forward: float
    backward: float
    recompute: float
    send_forward: float
    send_backward: float
    finish: float  # optimizer step (the gradient all-reduce comes on top)

    @property
    def per_micro_batch(self) -> float:
        return (self.forward + self.backward + self.recompute + self.send_forward
                + self.send_backward)


def _pricer(job: Job, comm: CommModel | None, stage: int) -> Callable[[Segment], float]:
    """Fast mode's price of a collective segment on ``stage`` on its own (the engine's
    ``_price``; sharing links with other collectives only slows it), or nothing without a
    placement's priced plans."""
    if comm is None:
        return lambda g: 0.0
    return lambda g: (comm.tp_plan(stage) if g.kind == "tp" else comm.dp_plan(stage)).time_s(
        stack_bytes(job, g.op, g.nbytes), g.op)


def _chunk_seconds(job: Job, stage: int, chunk: ModelChunk, comm: CommModel | None,
                   cache: dict[tuple[object, ...], float],
                   segments: dict[tuple[object, ...], list[Segment]]) -> tuple[float, float]:
    """(forward, backward) seconds of ``chunk`` on ``stage`` as fast mode prices the pass.
    Without communication a pass is the sum of its units' compute: one layer, the embedding
    and the head are priced once per job and kind of stage (selective recomputation or not)
    and multiplied; with it, a whole chunk (collectives started on a stream overlap the
    units that follow) once per stage and chunk shape (its segments once per shape)."""
    selective = stage in job.train.selective_stage_set(job.layout.pp)

    def priced(c: ModelChunk, kind: str) -> float:
        shape = (kind, len(c.layers), c.first, c.last, selective)
        if shape not in segments:  # the same on every stage of this shape
            segments[shape] = stage_segments(job, stage, kind, c)  # type: ignore[arg-type]
        key = (*shape, stage if comm is not None else None)
        if key not in cache:
            cache[key] = time_pass(segments[shape], "compute", _pricer(job, comm, stage)).seconds
        return cache[key]

    if comm is not None:
        return priced(chunk, "F"), priced(chunk, "B")
    start = chunk.layers.start
    parts = [(replace(chunk, layers=range(start, start + 1), first=False, last=False),
              len(chunk.layers)),
             (replace(chunk, layers=range(start, start), last=False), int(chunk.first)),
             (replace(chunk, layers=range(start, start), first=False), int(chunk.last))]
    return tuple(sum(priced(c, kind) * n for c, n in parts if n)  # type: ignore[return-value]
                 for kind in ("F", "B"))


def stage_passes(job: Job, setup: Setup | None = None) -> Iterator[StagePasses]:
    """What each stage does per micro-batch and once at the end, stage 0 first (priced as
    they are asked for); without a ``setup`` (no placement yet) the communication counts as
    nothing. A pass is priced as fast mode prices it (:func:`time_pass` of the chunk's
    segments, :func:`_chunk_seconds`)."""
    model, lay = job.model, job.layout
    comm = None if setup is None else setup.comm
    sent = stack_bytes(job, "p2p", p2p_message_bytes(job))
    cache: dict[tuple[object, ...], float] = {}
    segments: dict[tuple[object, ...], list[Segment]] = {}
    for s in range(lay.pp):
        f = b = 0.0
        chunks = layout_chunks(model, lay, s)
        for c in chunks:
            cf, cb = _chunk_seconds(job, s, c, comm, cache, segments)
            f, b = f + cf, b + cb
        # a chunk's forward sends on unless it holds the head; its backward unless the embedding
        ahead = sum(not c.last for c in chunks)
        behind = sum(not c.first for c in chunks)
        optimizer = optimizer_time_s(job, stage_parameters(model, lay, s),
                                     stage_tensor_count(model, lay, s, "block"))
        # the stack's fixed overheads: one before each chunk's forward, one before the step
        yield StagePasses(
            forward=f + len(chunks) * job.stack.micro_batch_overhead_s, backward=b,
            recompute=f if s in job.recompute_stages else 0.0,
            send_forward=ahead * comm.p2p_plan(s, (s + 1) % lay.pp).time_s(sent)
            if ahead and comm is not None else 0.0,
            send_backward=behind * comm.p2p_plan(s, (s - 1) % lay.pp).time_s(sent)
            if behind and comm is not None else 0.0,
            finish=optimizer + job.stack.step_overhead_s)


def step_lower_bound_s(job: Job, setup: Setup | None = None, cutoff_s: float = math.inf) -> float:
    """Seconds: the fast-mode prediction of ``job`` placed as ``setup`` is at least this
    (without ``setup``: of ``job`` placed anyhow, from its arithmetic alone). Stops pricing
    once the bound reaches ``cutoff_s`` (the answer is then only known to be >= ``cutoff_s``).

    Of the gradient all-reduces only stage 0's is priced, and last: the fill-and-drain bound
    ends with it, and pricing every stage's (large groups over many links) would cost more
    than it prunes.
    """
    m, fill_drain = job.micro_batches, job.layout.virtual_stages == 1
    bound = fill = drain = 0.0
    ends_on_stage0 = 0.0  # the largest term that ends with stage 0's all-reduce and optimizer
    for s, p in enumerate(stage_passes(job, setup)):
        bound = max(bound, m * p.per_micro_batch + p.finish)
        if s == 0:
            stage0 = p
            ends_on_stage0 = m * p.per_micro_batch
        if fill_drain:
            # stage 0 finishes after the drain of stages s-1 .. 0 (its own backward included)
            ends_on_stage0 = max(ends_on_stage0, fill + m * p.per_micro_batch + drain)
            fill += p.forward + p.send_forward
            drain += p.backward + p.recompute + (p.send_backward if s > 0 else 0.0)
        bound = max(bound, ends_on_stage0 + stage0.finish)
        if bound >= cutoff_s:
            return bound
    zero = job.train.zero_stage if job.layout.dp > 1 else 0
    if setup is not None and not job.train.overlap_grad_reduce and zero < 2:
        # (ZeRO-2 and 3 reduce the gradients inside the backward passes, priced there)
        op = gradient_reduction(zero)
        sync = setup.comm.dp_plan(0).time_s(stack_bytes(job, op, grad_bytes(job, 0)), op)
        bound = max(bound, ends_on_stage0 + sync + stage0.finish)
    return bound


class FastModeBound:
    """The two bounds :func:`fugaku_sim.sim.plan.plan_layouts` prunes with: ``quick`` from
    the arithmetic alone (about 0.3 ms; it orders the layouts and stops the search), ``tight``
    with the placed job's priced communication (it skips a layout before its prediction)."""

    @staticmethod
    def quick(job: Job) -> float:
        return step_lower_bound_s(job)

    @staticmethod
    def tight(job: Job, setup: Setup, cutoff_s: float) -> float:
        return step_lower_bound_s(job, setup, cutoff_s)
