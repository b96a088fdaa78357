"""The part of the model one rank holds: its model chunks, their parameters and caches.

A pipeline stage holds the model chunks :func:`fugaku_sim.tensors.layout_chunks` gives it
(one, or ``virtual_stages`` under the interleaved schedule); virtual stage 0 also holds the
embeddings and the last virtual stage the final layer norm and the LM head. Which tensors
that is, and this rank's tensor-parallel part of each, come from the model's tensor table
(:mod:`fugaku_sim.tensors`); the blocks are the model family's (GPT-2 or Llama,
:func:`fugaku_sim.train.model.block_forward`). The forward of micro-batch ``mb`` through a chunk keeps its
caches until the backward of the same pair; a stage that recomputes keeps only each layer's
input and reruns the layer's forward just before its backward (full activation
recomputation, Chen et al. 2016; Megatron-LM), timed as ``recompute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fugaku_sim.parallel import ModelChunk
from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors import held_tensors, layout_chunks, tensor_table
from fugaku_sim.train import model as M
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.layers import SINGLE_RANK, Region
from fugaku_sim.train.params import rank_share
from fugaku_sim.train.timers import Timers

GradsReady = Callable[[list[str]], None]


def stage_tensor_names(model: ModelSpec, chunks: list[ModelChunk]) -> list[str]:
    """Global names of the tensors a stage holds, in flat-buffer (forward) order.

    The head uses the token embedding itself when the stage also holds it, else the tied
    copy ``lm_head.weight`` (or, untied, its own ``lm_head.weight``).
    """
    return [r.name for r in held_tensors(tensor_table(model), chunks)]


class StageModel:
    """Forward and backward of this rank's chunks over its flat parameters; ``region`` is
    where the tensor-parallel regions begin and end (Megatron-LM's f and g over the tensor
    group)."""

    def __init__(self, model: ModelSpec, layout: Layout, stage: int, tp_rank: int,
                 flat: FlatParams, recompute: bool, timers: Timers,
                 region: Region = SINGLE_RANK) -> None:
        self.model, self.layout, self.flat = model, layout, flat
        self.chunks = layout_chunks(model, layout, stage)
        self.share = rank_share(model, layout.tp, tp_rank)
        self.table = tensor_table(model)
        self.head_name = M.head_name(model, set(flat.params))
        self.recompute, self.timers, self.region = recompute, timers, region
        self._saved: dict[tuple[int, int], Any] = {}

    def forward(self, chunk: ModelChunk, mb: int, inp: np.ndarray,
                targets: np.ndarray | None, keep: bool = True) -> np.ndarray | float:
        """Run ``chunk`` on micro-batch ``mb``: tokens [b, T] (first chunk) or x [b, T, C].

        Returns x [b, T, C], or the mean loss on the last chunk. With ``keep`` the caches
        are saved for :meth:`backward`.
        """
        p, m, region = self.flat.params, self.model, self.region
        emb = None
        if chunk.first:
            x, emb = M.embed_forward(p, m, inp, self.share.vocab_start, region)
        else:
            x = inp
        saved = []
        for layer in chunk.layers:
            x_in = x
            x, cache = M.block_forward(p, m, layer, x, self.share, region)
            saved.append(x_in if self.recompute else cache)
        if not chunk.last:
            if keep:
                self._saved[(mb, chunk.index)] = (emb, saved, None)
            return x
        assert targets is not None
        loss, head = M.head_forward(p, m, x, targets, self.share.vocab_start, region,
                                    self.head_name)
        if keep:
            self._saved[(mb, chunk.index)] = (emb, saved, head)
        return loss

    def backward(self, chunk: ModelChunk, mb: int, dout: np.ndarray | None, dloss: float,
                 ready: GradsReady | None = None) -> np.ndarray | None:
        """Backward of ``chunk`` for ``mb``: adds parameter gradients into the flat buffer.

        ``dout`` [b, T, C] is the gradient of the chunk's output (None on the last chunk,
        which starts from ``dloss``, the weight of this micro-batch's mean loss). Returns
        dx [b, T, C], or None on the first chunk. ``ready(names)`` is told as each layer's
        gradients are complete.
        """
        emb, saved, head = self._saved.pop((mb, chunk.index))
        p, g, m, region = self.flat.params, self.flat.grads, self.model, self.region
        if chunk.last:
            dout = M.head_backward(dloss, head, g, p, region)
            _notify(ready, self._held(self.table.part("head")))
        assert dout is not None
        for layer, item in zip(reversed(chunk.layers), reversed(saved)):
            cache = item
            if self.recompute:
                with self.timers.region("recompute"):
                    _, cache = M.block_forward(p, m, layer, item, self.share, region)
            dout = M.block_backward(dout, cache, g, region)
            _notify(ready, [r.name for r in self.table.block(layer)])
        if chunk.first:
            M.embed_backward(dout, emb, g, m)
            _notify(ready, self._held(self.table.part("embedding")))
            return None
        return dout

    def _held(self, rows: list[Any]) -> list[str]:
        return [r.name for r in rows if r.name in self.flat.params]

    def pending(self) -> int:
        """Micro-batches whose forward has run and backward has not."""
        return len(self._saved)


def _notify(ready: GradsReady | None, names: list[str]) -> None:
    if ready is not None:
        ready(names)


def local_entries(model: ModelSpec, names: list[str], tp: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, local shape) of each tensor under ``tp``-way tensor parallelism."""
    table = tensor_table(model)
    return [(n, table[n].local_shape(tp)) for n in names]


def norm_names(model: ModelSpec, names: list[str], tp_rank: int) -> set[str]:
    """Tensors whose gradients this rank counts in the global gradient norm.

    Tensor-split tensors count on every tensor rank (each holds a different part);
    replicated ones only on tensor rank 0; a tied copy not at all (the stage holding what it
    copies counts it), so that each parameter counts once.
    """
    table = tensor_table(model)
    return {n for n in names if table[n].tied_to is None
            and (table[n].split.kind != "rep" or tp_rank == 0)}


def decay_names(model: ModelSpec, names: list[str]) -> set[str]:
    """Tensors with weight decay (the matrices and embeddings, as the table marks them)."""
    table = tensor_table(model)
    return {n for n in names if table[n].decay}
