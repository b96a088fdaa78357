"""PipelineEngine: simpy processes, one per pipeline stage (per replica in detailed mode),
running the shared schedule (:func:`fugaku_sim.parallel.pipeline_schedule`) with real
dependencies. Time unit: seconds.

A stage's forward of micro-batch i on virtual stage v waits for the activation of v - 1 to
*arrive*; its backward waits for the gradient of v + 1. After an op the stage sends its
output to the neighbour (a blocking send, as Megatron's and DeepSpeed's 1F1B do) and the
receiver's arrival event fires when the transfer ends. A stage that recomputes runs the
forward of its layers again right before each backward. After the last backward it
synchronises gradients (data-parallel all-reduce, then the tied-embedding all-reduce on the
first and last stage) -- or, with ``overlap_grad_reduce``, starts the data-parallel all-reduce
when its last backward starts and waits only for what is left -- then steps the optimizer.
The bubble is not a formula: it is the idle time this leaves. The job's software stack adds
its fixed overheads: one per micro-batch forward pass of a model chunk (charged to compute) and
one per step before the optimizer (charged to it).

Every stage keeps a :class:`Ledger` of where its time went.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from fugaku_sim.parallel import PipelineOp, pipeline_schedule, stage_of_virtual, virtual_stage
from fugaku_sim.sim.compute import (
    Segment,
    activation_message_bytes,
    optimizer_time_s,
    stage_segments,
)
from fugaku_sim.sim.transport import Proc, Transport
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
        self.msg = activation_message_bytes(job)
        self._segments: dict[tuple[int, int, str], list[Segment]] = {}
        self._timings: dict[
            tuple[int, int, str], tuple[float, float, list[tuple[bool, float]]]
        ] = {}
        self._arrivals: dict[tuple[int, str, int, int], simpy.Event] = {}
        self.ledgers = {(r, s): Ledger() for r in range(replicas) for s in range(self.pp)}
        self.events: list[TraceEvent] = []

    def run(self) -> EngineResult:
        for r in range(self.replicas):
            for s in range(self.pp):
                self.env.process(self._stage(r, s))
        self.env.run()
        return EngineResult(self.ledgers, self.events)

    def segments(self, stage: int, chunk: int, kind: str) -> list[Segment]:
        key = (stage, chunk, kind)
        if key not in self._segments:
            c = self.stage_chunks[stage][chunk]
            self._segments[key] = stage_segments(
                self.job, stage, "F" if kind == "F" else "B", len(c.layers), c.first, c.last
            )
        return self._segments[key]

    def _arrival(self, r: int, kind: str, v: int, mb: int) -> simpy.Event:
        key = (r, kind, v, mb)
        if key not in self._arrivals:
            self._arrivals[key] = self.env.event()
        return self._arrivals[key]

    def _stage(self, r: int, s: int) -> Proc:
        lay = self.job.layout
        ops = pipeline_schedule(lay.schedule, self.pp, s, self.job.micro_batches, self.chunks)
        sync = None
        for i, op in enumerate(ops):
            v = virtual_stage(s, op.chunk, self.pp)
            if op.kind == "F" and v > 0:
                yield self._arrival(r, "F", v - 1, op.micro_batch)
            if op.kind == "B" and v < self.virtual - 1:
                yield self._arrival(r, "B", v + 1, op.micro_batch)
            if i == len(ops) - 1 and self.job.train.overlap_grad_reduce:
                sync = self.env.process(self.transport.grad_sync(r, s))
            if op.kind == "B" and s in self.recompute:
                yield from self._run(r, s, (op.chunk, "F"), "recompute", f"R{op}")
            if op.kind == "F" and self.job.stack.micro_batch_overhead_s:
                yield from self._pause(r, s, self.job.stack.micro_batch_overhead_s, "compute",
                                       f"overhead {op}")
            yield from self._run(r, s, (op.chunk, op.kind), "compute", str(op))
            yield from self._send(r, s, v, op)
        yield from self._finish(r, s, sync)

    def _finish(self, r: int, s: int, sync: simpy.Process | None) -> Proc:
        book, t0 = self.ledgers[(r, s)], self.env.now
        if sync is None:
            yield from self.transport.grad_sync(r, s)
        else:
            yield sync
        if tied_copy_parameters(self.job.model, self.job.layout) and s in (0, self.pp - 1):
            yield from self.transport.embedding_sync(r, s)
        book.add("dp_comm", self.env.now - t0)
        self._trace(r, s, "comm", "grad sync", "dp_comm", t0, self.env.now - t0)
        model, lay = self.job.model, self.job.layout
        params = stage_parameters(model, lay, s)
        tensors = stage_tensor_count(model, lay, s, "block")  # fused ops: the blocks' tensors
        if self.job.stack.step_overhead_s:
            yield from self._pause(r, s, self.job.stack.step_overhead_s, "optimizer",
                                   "step overhead")
        t1 = self.env.now
        yield self.env.timeout(optimizer_time_s(self.job, params, tensors))
        book.add("optimizer", self.env.now - t1)
        self._trace(r, s, "compute", "optimizer", "optimizer", t1, self.env.now - t1)
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
        self.ledgers[(r, s)].add("pp_comm", self.env.now - t0)
        self._trace(r, s, "comm", f"send {op}", "pp_comm", t0, self.env.now - t0)
        self._arrival(r, kind, v, op.micro_batch).succeed()

    def _timed(
        self, s: int, which: tuple[int, str]
    ) -> tuple[float, float, list[tuple[bool, float]]]:
        """Fast mode: (compute seconds, tensor all-reduce seconds, pieces) of a pass, cached."""
        key = (s, *which)
        if key not in self._timings:
            segs = self.segments(s, *which)
            pieces = [
                (
                    g.kind == "compute",
                    g.seconds if g.kind == "compute" else self.transport.tp_time_s(s, g.nbytes),
                )
                for g in segs
            ]
            compute = sum(d for c, d in pieces if c)
            self._timings[key] = (compute, sum(d for c, d in pieces if not c), pieces)
        return self._timings[key]

    def _run(self, r: int, s: int, which: tuple[int, str], category: str, name: str) -> Proc:
        """Run compute segments and tensor all-reduces; one timeout per pass in fast mode."""
        book = self.ledgers[(r, s)]
        if self.transport.analytic:
            t0 = self.env.now
            compute, tp, pieces = self._timed(s, which)
            yield self.env.timeout(compute + tp)
            book.add(category, compute)
            book.add("tp_comm", tp)
            if self.tracing and r == 0:
                at = t0
                for is_compute, d in pieces:
                    lane, label = ("compute", name) if is_compute else ("comm", f"tp {name}")
                    self._trace(r, s, lane, label, category if is_compute else "tp_comm", at, d)
                    at += d
            return
        for g in self.segments(s, *which):
            t0 = self.env.now
            if g.kind == "compute":
                yield self.env.timeout(g.seconds)
                book.add(category, g.seconds)
            else:
                yield from self.transport.tp_allreduce(r, s, g.nbytes)
                book.add("tp_comm", self.env.now - t0)
            self._trace(
                r,
                s,
                "compute" if g.kind == "compute" else "comm",
                name if g.kind == "compute" else f"tp {name}",
                category if g.kind == "compute" else "tp_comm",
                t0,
                self.env.now - t0,
            )

    def _trace(
        self, r: int, s: int, lane: str, name: str, cat: str, start: float, dur: float
    ) -> None:
        if self.tracing and r == 0 and dur > 0:
            self.events.append(TraceEvent(name, cat, r, s, lane, start, dur))
