"""A lower bound of a job's fast-mode step time, an order of magnitude cheaper than the engine.

The fast-mode engine (:class:`fugaku_sim.sim.engine.PipelineEngine` over
:class:`fugaku_sim.sim.transport.AnalyticTransport`) runs each pipeline stage as one process
whose operations take their time one after another: a pass (forward, backward, or the forward
recomputed before a backward) is its compute plus its tensor-parallel all-reduces, each op
then blocks on its send to the neighbour stage, and after the last op the stage all-reduces
its gradients (unless that overlaps the last backward) and steps its optimizer. Priced with
the same functions and plans (:func:`fugaku_sim.sim.compute.stage_segments`, the transport's
``tp_time_s``, ``p2p_time_s`` and ``grad_sync_time_s``), two bounds follow, and the step is at
least the larger:

- **busy stage**: no stage finishes before ``m`` micro-batches of its own passes and sends
  and its optimizer step (``m`` micro-batches per replica; stage 0: and its gradient
  all-reduce, the only one priced);
- **pipeline fill and drain** (1F1B and GPipe, one model chunk per stage): stage s cannot
  start before the first micro-batch's forwards and sends through stages 0 .. s-1, and the
  gradient of its last micro-batch must then return through their backwards (with
  recomputation) before stage 0 all-reduces and steps.

Left out, so the result stays a bound: the idle time between passes beyond the fill and
drain, the tied-embedding all-reduce and waiting for a neighbour's arrival. Per layer and per
stage pair everything is priced once and multiplied, so the bound costs about a millisecond
where predicting a job with many micro-batches or stages costs a tenth of a second or more.
``tests/sim/test_step_bound.py`` checks it against the engine for every candidate of several
plans.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import simpy

from fugaku_sim.sim.compute import (
    Segment,
    activation_message_bytes,
    optimizer_time_s,
    stage_segments,
)
from fugaku_sim.sim.predict import Setup
from fugaku_sim.sim.transport import AnalyticTransport
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


def _unit_segments(job: Job) -> dict[str, list[list[Segment]]]:
    """Segments of a forward and a backward pass of one layer, the embedding, the head."""
    return {kind: [stage_segments(job, 0, kind, n, first, last)  # type: ignore[arg-type]
                   for n, first, last in ((1, False, False), (0, True, False), (0, False, True))]
            for kind in ("F", "B")}


def _priced(segments: list[Segment], transport: AnalyticTransport | None, stage: int) -> float:
    """Seconds of ``segments`` on ``stage``: compute plus tensor all-reduces as fast mode
    prices them (compute alone without a transport)."""
    return sum(g.seconds if g.kind == "compute" else
               transport.tp_time_s(stage, g.nbytes) if transport is not None else 0.0
               for g in segments)


def stage_passes(job: Job, setup: Setup | None = None) -> Iterator[StagePasses]:
    """What each stage does per micro-batch and once at the end, stage 0 first (priced as
    they are asked for); without a ``setup`` (no placement yet) the communication counts as
    nothing."""
    model, lay = job.model, job.layout
    transport = None if setup is None else AnalyticTransport(simpy.Environment(), job, setup.comm)
    msg = activation_message_bytes(job)
    segments = _unit_segments(job)  # the same on every stage; only the all-reduces differ
    for s in range(lay.pp):
        unit = {k: [_priced(g, transport, s) for g in v] for k, v in segments.items()}
        f = b = 0.0
        chunks = layout_chunks(model, lay, s)
        for c in chunks:
            f += unit["F"][0] * len(c.layers) + unit["F"][1] * c.first + unit["F"][2] * c.last
            b += unit["B"][0] * len(c.layers) + unit["B"][1] * c.first + unit["B"][2] * c.last
        # a chunk's forward sends on unless it holds the head; its backward unless the embedding
        ahead = sum(not c.last for c in chunks)
        behind = sum(not c.first for c in chunks)
        optimizer = optimizer_time_s(job, stage_parameters(model, lay, s),
                                     stage_tensor_count(model, lay, s, "block"))
        yield StagePasses(
            forward=f, backward=b, recompute=f if s in job.recompute_stages else 0.0,
            send_forward=ahead * transport.p2p_time_s(s, (s + 1) % lay.pp, msg)
            if ahead and transport is not None else 0.0,
            send_backward=behind * transport.p2p_time_s(s, (s - 1) % lay.pp, msg)
            if behind and transport is not None else 0.0,
            finish=optimizer)


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
    if setup is not None and not job.train.overlap_grad_reduce:
        sync = AnalyticTransport(simpy.Environment(), job, setup.comm).grad_sync_time_s(0)
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
