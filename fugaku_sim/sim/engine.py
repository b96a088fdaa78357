"""PipelineEngine: simpy processes, one per pipeline stage (per replica in detailed mode),
running the shared schedule (:func:`fugaku_sim.parallel.pipeline_schedule`) with real
dependencies. Time unit: seconds.

A stage's forward of micro-batch i on virtual stage v waits for the activation of v - 1 to
*arrive*; its backward waits for the gradient of v + 1. After an op the stage sends its
output to the neighbour (a blocking send, as Megatron's and DeepSpeed's 1F1B do) and the
receiver's arrival event fires when the transfer ends. A stage that recomputes runs the
forward of its transformer layers again right before each backward -- not the embedding, the
LM head or the loss: full activation recomputation checkpoints the layers only (Megatron-LM's
``--recompute-granularity full``; the trainer's ``StageModel.backward``); a stage with
selective recomputation re-runs only the attention core, inside its backward pass
(:mod:`fugaku_sim.sim.segments`). After the last backward it synchronises gradients (the
copied key/value heads' over the tensor group when there are fewer key/value heads than
tensor ranks, then the data-parallel all-reduce, then the tied-embedding all-reduce on the
first and last stage) -- or, with ``overlap_grad_reduce``, starts the data-parallel
all-reduce when its last backward starts and waits only for what is left -- then steps the
optimizer. Under ZeRO-1 the gradients are reduce-scattered instead (same overlap), and the
updated weights all-gathered over the data-parallel group after the optimizer step; under
ZeRO-2 and ZeRO-3 they were reduce-scattered during every backward already, ZeRO-2 then
all-gathers the updated weights (ZeRO-3 keeps them sharded until the next forward gathers
them). The bubble is not a formula: it is the idle time this leaves. The job's software
stack adds its fixed overheads: one per micro-batch forward pass of a model chunk (charged to
compute) and one per step before the optimizer (charged to it).

A pass is priced in one of two ways. When the transport prices collectives on their own
(``Transport.analytic``: the fast mode where no collectives that run at once meet on a
link), the whole pass is one timeout (:func:`fugaku_sim.sim.segments.time_pass`).
Otherwise its segments are played one by one: compute as timeouts, collectives as the
transport's processes, started collectives as processes on a per-stage stream.

Every stage keeps a :class:`Ledger` of where its time went.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import simpy

from fugaku_sim.errors import SpecError
from fugaku_sim.parallel import PipelineOp, pipeline_schedule, stage_of_virtual, virtual_stage
from fugaku_sim.sim.collectives import Collective
from fugaku_sim.sim.compute import optimizer_time_s
from fugaku_sim.sim.segments import (
    COMM_CATEGORY,
    PassTiming,
    Segment,
    comm_label,
    p2p_message_bytes,
    stage_segments,
    time_pass,
)
from fugaku_sim.sim.transport import Proc, Transport, grad_bytes, kv_copy_grad_bytes
from fugaku_sim.spec.breakdown import CHARGED_KEYS
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import (
    layout_chunks,
    stage_parameters,
    stage_tensor_count,
    tied_copy_parameters,
)

#: what a stage replica charges time to; the bubble is what is left of the step
CATEGORIES = CHARGED_KEYS

#: most work one simulated step may hold, in passes (a forward or backward of one
#: micro-batch through one model chunk on one stage replica) of the fast mode; a detailed
#: pass costs :data:`DETAILED_PASS_WEIGHT` per layer (each layer's collectives are flows).
#: Measured on a shared 2-core machine (load 7): ~11 us a fast pass, ~44 us a detailed layer,
#: so the limit is about 2 s of simulation; the largest published layouts need a few thousand.
MAX_SIMULATED_WORK = 200_000
DETAILED_PASS_WEIGHT = 4


def simulated_work(job: Job, replicas: int, detailed: bool) -> int:
    """Work units of one simulated step (see :data:`MAX_SIMULATED_WORK`)."""
    lay = job.layout
    passes = replicas * lay.pp * lay.virtual_stages * 2 * job.micro_batches
    if not detailed:
        return passes
    return passes * DETAILED_PASS_WEIGHT * job.model.layers // (lay.pp * lay.virtual_stages)


def check_simulation_size(job: Job, replicas: int, detailed: bool) -> None:
    """Refuse a step too large to simulate in a few seconds, naming the field to change.

    Raises:
        SpecError: the step's work exceeds :data:`MAX_SIMULATED_WORK`.
    """
    work = simulated_work(job, replicas, detailed)
    if work <= MAX_SIMULATED_WORK:
        return
    t, lay = job.train, job.layout
    more = "; or use --mode fast" if detailed else ""
    raise SpecError(
        f"train.global_batch: {t.global_batch} sequences make {job.micro_batches} "
        f"micro-batches per pipeline (global_batch / (micro_batch {t.micro_batch} x dp "
        f"{lay.dp})), {work:,} units of simulation a step, above the simulator's "
        f"{MAX_SIMULATED_WORK:,}; raise train.micro_batch or layout.dp{more}"
    )


def gradient_reduction(zero_stage: int) -> Collective:
    """The data-parallel gradient collective after the backward: an all-reduce, or under
    ZeRO-1 a reduce-scatter, each rank keeping the summed gradients of its shard (the
    trainer's and DeepSpeed's), the updated weights all-gathered after the optimizer step."""
    return "reduce_scatter" if zero_stage == 1 else "allreduce"


@dataclass
class Ledger:
    """Seconds one stage replica spent per category, and when it finished."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    end: float = 0.0

    def add(self, category: str, seconds: float) -> None:
        self.seconds[category] += seconds


@dataclass(frozen=True)
class TraceEvent:
    """One slice of the timeline: ``lane`` is 'compute' or 'comm' of ``stage``."""

    name: str
    category: str
    replica: int
    stage: int
    lane: str
    start: float
    duration: float


@dataclass
class EngineResult:
    ledgers: dict[tuple[int, int], Ledger]
    trace: list[TraceEvent]

    @property
    def step_time_s(self) -> float:
        return max(led.end for led in self.ledgers.values())

    @property
    def critical(self) -> tuple[int, int]:
        """(replica, stage) that finished last (lowest stage on ties)."""
        return max(self.ledgers, key=lambda k: (self.ledgers[k].end, -k[1], -k[0]))


class PipelineEngine:
    """Runs one training step of ``replicas`` pipeline replicas over ``transport``."""

    def __init__(self, job: Job, transport: Transport, replicas: int = 1, trace: bool = False):
        self.job, self.transport, self.env = job, transport, transport.env
        self.replicas, self.tracing = replicas, trace
        lay = job.layout
        self.pp, self.chunks = lay.pp, lay.virtual_stages
        self.virtual = self.pp * self.chunks
        self.stage_chunks = [layout_chunks(job.model, lay, s) for s in range(self.pp)]
        self.recompute = job.recompute_stages
        self.msg = p2p_message_bytes(job)
        self._segments: dict[tuple[int, int, str], list[Segment]] = {}
        self._layers: dict[tuple[object, ...], tuple[list[Segment], int]] = {}
        self._timings: dict[tuple[int, int, str, str], PassTiming] = {}
        self._arrivals: dict[tuple[int, str, int, int], simpy.Event] = {}
        self._streams: dict[tuple[int, int, str], simpy.Process] = {}
        self.ledgers = {(r, s): Ledger() for r in range(replicas) for s in range(self.pp)}
        self.events: list[TraceEvent] = []

    def run(self) -> EngineResult:
        for r in range(self.replicas):
            for s in range(self.pp):
                self.env.process(self._stage(r, s))
        self.env.run()
        return EngineResult(self.ledgers, self.events)

    def segments(self, stage: int, chunk: int, kind: str) -> list[Segment]:
        """Segments of a forward ("F"), backward ("B") or recomputation ("R": the chunk's
        layers only, without its embedding or head) of one chunk."""
        key = (stage, chunk, kind)
        if key not in self._segments:
            c = self.stage_chunks[stage][chunk]
            if kind == "R":  # a recomputation reruns the layers, not the embedding or head
                c = replace(c, first=False, last=False)
            self._segments[key] = stage_segments(self.job, stage, "B" if kind == "B" else "F", c,
                                                 self._layers)
        return self._segments[key]

    def _arrival(self, r: int, kind: str, v: int, mb: int) -> simpy.Event:
        key = (r, kind, v, mb)
        if key not in self._arrivals:
            self._arrivals[key] = self.env.event()
        return self._arrivals[key]

    def _stage(self, r: int, s: int) -> Proc:
        lay = self.job.layout
        ops = pipeline_schedule(lay.schedule, self.pp, s, self.job.micro_batches, self.chunks)
        zero = self.job.train.zero_stage if lay.dp > 1 else 0
        sync = None
        for i, op in enumerate(ops):
            v = virtual_stage(s, op.chunk, self.pp)
            if op.kind == "F" and v > 0:
                yield self._arrival(r, "F", v - 1, op.micro_batch)
            if op.kind == "B" and v < self.virtual - 1:
                yield self._arrival(r, "B", v + 1, op.micro_batch)
            if i == len(ops) - 1 and self.job.train.overlap_grad_reduce and zero < 2:
                sync = self.env.process(self.transport.grad_sync(r, s, gradient_reduction(zero)))
            if op.kind == "B" and s in self.recompute:
                yield from self._run(r, s, (op.chunk, "R"), "recompute", f"R{op}")
            if op.kind == "F" and self.job.stack.micro_batch_overhead_s:
                yield from self._pause(r, s, self.job.stack.micro_batch_overhead_s, "compute",
                                       f"overhead {op}")
            yield from self._run(r, s, (op.chunk, op.kind), "compute", str(op))
            yield from self._send(r, s, v, op)
        yield from self._finish(r, s, sync)

    def _finish(self, r: int, s: int, sync: simpy.Process | None) -> Proc:
        book, job = self.ledgers[(r, s)], self.job
        kv = kv_copy_grad_bytes(job, s)
        if kv:  # the copied key/value heads' gradients, summed over the tensor group
            t_kv = self.env.now
            yield from self.transport.tp_collective(r, s, kv, "allreduce")
            book.add("tp_comm", self.env.now - t_kv)
            self._trace(r, s, "comm", "kv grad sum", "tp_comm", t_kv, self.env.now - t_kv)
        t0 = self.env.now
        zero = job.train.zero_stage if job.layout.dp > 1 else 0
        if zero < 2:  # ZeRO-2 and 3 reduced the gradients during the backward passes
            if sync is None:
                yield from self.transport.grad_sync(r, s, gradient_reduction(zero))
            else:
                yield sync
        if tied_copy_parameters(job.model, job.layout) and s in (0, self.pp - 1):
            yield from self.transport.embedding_sync(r, s)
        book.add("dp_comm", self.env.now - t0)
        self._trace(r, s, "comm", "grad sync", "dp_comm", t0, self.env.now - t0)
        model, lay = job.model, job.layout
        params = stage_parameters(model, lay, s)
        tensors = stage_tensor_count(model, lay, s, "block")  # fused ops: the blocks' tensors
        if job.stack.step_overhead_s:
            yield from self._pause(r, s, job.stack.step_overhead_s, "optimizer", "step overhead")
        t1 = self.env.now
        yield self.env.timeout(optimizer_time_s(job, params, tensors))
        book.add("optimizer", self.env.now - t1)
        self._trace(r, s, "compute", "optimizer", "optimizer", t1, self.env.now - t1)
        if zero in (1, 2):
            # every rank updated its shard: the weights (as many bytes as the gradients, both
            # at the training precision) are all-gathered over the data-parallel group
            t2 = self.env.now
            yield from self.transport.dp_collective(r, s, grad_bytes(job, s), "all_gather",
                                                    ("weights",))
            book.add("dp_comm", self.env.now - t2)
            self._trace(r, s, "comm", "weight all-gather", "dp_comm", t2, self.env.now - t2)
        book.end = self.env.now

    def _pause(self, r: int, s: int, seconds: float, category: str, name: str) -> Proc:
        """A fixed overhead of the software stack, charged to ``category``."""
        t0 = self.env.now
        yield self.env.timeout(seconds)
        self.ledgers[(r, s)].add(category, seconds)
        self._trace(r, s, "compute", name, category, t0, seconds)

    def _send(self, r: int, s: int, v: int, op: PipelineOp) -> Proc:
        if op.kind == "F" and v < self.virtual - 1:
            target, kind = v + 1, "F"
        elif op.kind == "B" and v > 0:
            target, kind = v - 1, "B"
        else:
            return
        t0 = self.env.now
        yield from self.transport.p2p(r, s, stage_of_virtual(target, self.pp), self.msg)
        seconds = self.env.now - t0
        self.ledgers[(r, s)].add("pp_comm", seconds)
        if self.tracing:
            self._trace(r, s, "comm", f"send {op}", "pp_comm", t0, seconds)
        self._arrival(r, kind, v, op.micro_batch).succeed()

    def _price(self, s: int, g: Segment) -> float:
        """Fast mode: seconds of collective ``g`` of stage ``s``, priced on its own."""
        if g.kind == "tp":
            return self.transport.tp_time_s(s, g.nbytes, g.op)
        return self.transport.dp_time_s(s, g.nbytes, g.op)

    def _timed(self, s: int, which: tuple[int, str], category: str) -> PassTiming:
        """Fast mode: a pass priced as one block of time (cached)."""
        key = (s, *which, category)
        if key not in self._timings:
            self._timings[key] = time_pass(
                self.segments(s, *which), category, lambda g: self._price(s, g))
        return self._timings[key]

    def _run(self, r: int, s: int, which: tuple[int, str], category: str, name: str) -> Proc:
        """Run a pass: one timeout in fast mode, segment by segment otherwise."""
        book = self.ledgers[(r, s)]
        if not self.transport.analytic:
            yield from self._play(r, s, which, category, name)
            return
        t0 = self.env.now
        timing = self._timed(s, which, category)
        yield self.env.timeout(timing.seconds)
        for key, seconds in timing.charges.items():
            book.add(key, seconds)
        if self.tracing and r == 0:
            for piece in timing.pieces:
                label = name if piece.lane == "compute" else f"{piece.label} {name}"
                self._trace(r, s, piece.lane, label, piece.category, t0 + piece.start,
                            piece.seconds)

    def _play(self, r: int, s: int, which: tuple[int, str], category: str, name: str) -> Proc:
        """Play a pass's segments: compute as timeouts, collectives through the transport,
        started ones on the stage's streams; waits charge what they expose."""
        book = self.ledgers[(r, s)]
        started: dict[int, tuple[simpy.Process, str]] = {}
        for i, g in enumerate(self.segments(s, *which)):
            t0 = self.env.now
            if g.kind == "compute":
                cat = "recompute" if g.recompute else category
                yield self.env.timeout(g.seconds)
                book.add(cat, g.seconds)
                self._trace(r, s, "compute", name, cat, t0, g.seconds)
            elif g.kind == "wait":
                proc, cat = started[g.handle]
                yield proc
                book.add(cat, self.env.now - t0)
            elif g.stream:
                key = (category, name, i)
                started[g.handle] = (self._start(r, s, g, key, name), COMM_CATEGORY[g.kind])
            else:
                yield from self._collective(r, s, g, (category, name, i))
                book.add(COMM_CATEGORY[g.kind], self.env.now - t0)
                self._trace(r, s, "comm", f"{comm_label(g)} {name}", COMM_CATEGORY[g.kind], t0,
                            self.env.now - t0)

    def _collective(self, r: int, s: int, g: Segment, key: tuple[object, ...]) -> Proc:
        if g.kind == "tp":
            yield from self.transport.tp_collective(r, s, g.nbytes, g.op)
        else:
            yield from self.transport.dp_collective(r, s, g.nbytes, g.op, key)

    def _start(self, r: int, s: int, g: Segment, key: tuple[object, ...], name: str
               ) -> simpy.Process:
        """Start ``g`` on its stream, after what was started there before."""
        before = self._streams.get((r, s, g.stream))

        def body() -> Proc:
            if before is not None:
                yield before
            t0 = self.env.now
            yield from self._collective(r, s, g, key)
            self._trace(r, s, "comm", f"{comm_label(g)} {name}", COMM_CATEGORY[g.kind], t0,
                        self.env.now - t0)

        proc = self.env.process(body())
        self._streams[(r, s, g.stream)] = proc
        return proc

    def _trace(
        self, r: int, s: int, lane: str, name: str, cat: str, start: float, dur: float
    ) -> None:
        if self.tracing and r == 0 and dur > 0:
            self.events.append(TraceEvent(name, cat, r, s, lane, start, dur))
