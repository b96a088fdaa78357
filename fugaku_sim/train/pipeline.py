"""Run one training step of a stage in the exact op order of the shared pipeline schedule.

The order comes from :func:`fugaku_sim.parallel.pipeline_schedule` (1F1B, GPipe or
interleaved 1F1B), the same function the simulator times. A forward of virtual stage v
receives its input from virtual stage v - 1 (the previous rank of the pipeline group, or the
last rank for the next chunk under interleaving) and sends its output to v + 1; a backward
receives from v + 1 and sends to v - 1. The first virtual stage reads tokens, the last one
computes the loss. Under sequence parallelism a message is this tensor rank's T / tp tokens.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from fugaku_sim.parallel import ModelChunk, PipelineOp, pipeline_schedule, stage_of_virtual
from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.spec.figures import sequence_shard_tokens
from fugaku_sim.train.comm import PipelineLinks
from fugaku_sim.train.grad_reduce import GradReducer
from fugaku_sim.train.stage import StageModel
from fugaku_sim.train.timers import Timers

MicroBatch = tuple[np.ndarray, np.ndarray]  # tokens [b, T], targets [b, T]


class PipelineRunner:
    """The ops of one stage for a step, with their messages and timing."""

    def __init__(self, model: ModelSpec, layout: Layout, stage: int, pipeline_ranks: list[int],
                 stage_model: StageModel, links: PipelineLinks | None, timers: Timers,
                 micro_batches: int) -> None:
        self.model, self.layout, self.stage = model, layout, stage
        self.ranks = pipeline_ranks
        self.sm, self.links, self.timers = stage_model, links, timers
        self.m = micro_batches
        chunks = layout.virtual_stages  # 1 unless the schedule is interleaved (Layout's rule)
        self.ops = pipeline_schedule(layout.schedule, layout.pp, stage, micro_batches, chunks)
        self.last_backward = {op.chunk: i for i, op in enumerate(self.ops) if op.kind == "B"}
        self.total_virtual = layout.pp * chunks
        # a message is [b, T', C]: T' = T / tp under sequence parallelism (Megatron-LM)
        self.tokens = sequence_shard_tokens(model, layout)

    @contextlib.contextmanager
    def _message(self, x: np.ndarray | None) -> Iterator[None]:
        """The op's input message counts as workspace while the op runs."""
        self.sm.memory.hold("workspace", "message in", 0 if x is None else x.nbytes)
        try:
            yield
        finally:
            self.sm.memory.drop("message in")

    def _rank_of(self, virtual: int) -> int:
        return self.ranks[stage_of_virtual(virtual, self.layout.pp)]

    def _input(self, chunk: ModelChunk, mb: int, batches: list[MicroBatch] | None,
               size: int) -> np.ndarray:
        if chunk.first:
            assert batches is not None
            return batches[mb][0]
        assert self.links is not None
        shape = (size, self.tokens, self.model.hidden)
        return self.links.recv(shape, np.float32, self._rank_of(chunk.virtual - 1),
                               2 * (chunk.virtual - 1))

    def train_step(self, batches: list[MicroBatch] | None, micro_batch: int, dloss: float,
                   reducer: GradReducer) -> float:
        """Run every op of the schedule; returns the sum of micro-batch losses (last stage).

        ``batches`` are this rank's micro-batches (None on stages that need no data);
        ``dloss`` is the weight of each micro-batch's mean loss in the step's loss.
        """
        loss_sum = 0.0
        reducer.start_step()
        for i, op in enumerate(self.ops):
            chunk = self.sm.chunks[op.chunk]
            if op.kind == "F":
                loss_sum += self._forward(op, chunk, batches, micro_batch)
            else:
                final = self.last_backward[op.chunk] == i  # the chunk's last micro-batch
                self._backward(op, chunk, micro_batch, dloss,
                               functools.partial(reducer.grads_ready, final=final))
        if self.links is not None:
            self.links.wait_all()
        return loss_sum

    def _forward(self, op: PipelineOp, chunk: ModelChunk, batches: list[MicroBatch] | None,
                 size: int) -> float:
        inp = self._input(chunk, op.micro_batch, batches, size)
        targets = batches[op.micro_batch][1] if chunk.last and batches is not None else None
        with self.timers.region("compute"), self._message(inp):
            out = self.sm.forward(chunk, op.micro_batch, inp, targets)
        if chunk.last:
            return float(out)  # type: ignore[arg-type]
        assert self.links is not None and isinstance(out, np.ndarray)
        self.links.send(out, self._rank_of(chunk.virtual + 1), 2 * chunk.virtual)
        return 0.0

    def _backward(self, op: PipelineOp, chunk: ModelChunk, size: int, dloss: float,
                  ready: Any) -> None:
        dout = None
        if not chunk.last:
            assert self.links is not None
            shape = (size, self.tokens, self.model.hidden)
            dout = self.links.recv(shape, np.float32, self._rank_of(chunk.virtual + 1),
                                   2 * (chunk.virtual + 1) + 1)
        with self.timers.region("compute"), self._message(dout):
            dx = self.sm.backward(chunk, op.micro_batch, dout, dloss, ready)
        if dx is not None:
            assert self.links is not None
            self.links.send(dx, self._rank_of(chunk.virtual - 1), 2 * chunk.virtual + 1)

    def evaluate(self, batches: list[MicroBatch] | None, micro_batch: int,
                 micro_batches: int) -> float:
        """Forwards only, micro-batch by micro-batch and chunk by chunk (an order that
        cannot deadlock); returns the sum of micro-batch losses (last stage)."""
        loss_sum = 0.0
        for mb in range(micro_batches):
            for chunk in self.sm.chunks:
                inp = self._input(chunk, mb, batches, micro_batch)
                targets = batches[mb][1] if chunk.last and batches is not None else None
                with self.timers.region("compute"):
                    out = self.sm.forward(chunk, mb, inp, targets, keep=False)
                if chunk.last:
                    loss_sum += float(out)  # type: ignore[arg-type]
                else:
                    assert self.links is not None and isinstance(out, np.ndarray)
                    self.links.send(out, self._rank_of(chunk.virtual + 1), 2 * chunk.virtual)
        if self.links is not None:
            self.links.wait_all()
        return loss_sum
