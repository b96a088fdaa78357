"""The part of the model one rank holds: its model chunks, their parameters and caches.

A pipeline stage holds the layers ``stage_layers`` gives it (one chunk, or ``virtual_stages``
chunks under the interleaved schedule); virtual stage 0 also holds the embeddings and the last
virtual stage the final layer norm and the tied LM head. Under tensor parallelism every tensor
is this rank's part (:mod:`fugaku_sim.train.sharding`). The forward of micro-batch ``mb``
through a chunk keeps its caches until the backward of the same pair; a stage that
recomputes keeps only each layer's input and reruns the layer's forward just before its
backward (full activation recomputation, Chen et al. 2016; Megatron-LM), timed as
``recompute``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.parallel import stage_layers, virtual_stage
from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.train import model as M
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.layers import AllReduce, no_allreduce
from fugaku_sim.train.sharding import (
    LM_HEAD,
    LN_F,
    WPE,
    WTE,
    global_shapes,
    layer_shapes,
    local_shape,
    split_kind,
)
from fugaku_sim.train.timers import Timers

GradsReady = Callable[[list[str]], None]


@dataclass(frozen=True)
class Chunk:
    """One model chunk of a stage: its layers and whether it holds the embedding or head."""

    index: int  # chunk number on this stage
    virtual: int  # position along the model: index x pp + stage
    layers: range
    first: bool
    last: bool


def stage_chunks(model: ModelSpec, layout: Layout, stage: int) -> list[Chunk]:
    """The chunks of ``stage`` (one unless the schedule is interleaved)."""
    chunks = layout.virtual_stages  # 1 unless the schedule is interleaved (Layout's rule)
    total = layout.pp * chunks
    out = []
    for c in range(chunks):
        v = virtual_stage(stage, c, layout.pp)
        out.append(Chunk(c, v, stage_layers(model.layers, layout.pp, stage, chunks, c),
                         v == 0, v == total - 1))
    return out


def stage_tensor_names(model: ModelSpec, chunks: list[Chunk]) -> list[str]:
    """Global names of the tensors a stage holds, in flat-buffer (forward) order.

    The head uses ``wte`` itself when the stage also holds the embedding, else its copy
    ``lm_head.weight``.
    """
    names: list[str] = []
    if any(c.first for c in chunks):
        names += [WTE, WPE]
    for c in chunks:
        for layer in c.layers:
            names += list(layer_shapes(model, layer))
    if any(c.last for c in chunks):
        names += list(LN_F)
        if WTE not in names:
            names.append(LM_HEAD)
    return names


class StageModel:
    """Forward and backward of this rank's chunks over its flat parameters."""

    def __init__(self, model: ModelSpec, layout: Layout, stage: int, tp_rank: int,
                 flat: FlatParams, recompute: bool, timers: Timers,
                 allreduce: AllReduce = no_allreduce) -> None:
        self.model, self.layout, self.flat = model, layout, flat
        self.chunks = stage_chunks(model, layout, stage)
        self.heads = model.heads // layout.tp
        self.vocab_start = tp_rank * (model.vocab // layout.tp)
        self.head_name = WTE if WTE in flat.params else LM_HEAD
        self.recompute, self.timers, self.allreduce = recompute, timers, allreduce
        self._saved: dict[tuple[int, int], Any] = {}

    def forward(self, chunk: Chunk, mb: int, inp: np.ndarray,
                targets: np.ndarray | None, keep: bool = True) -> np.ndarray | float:
        """Run ``chunk`` on micro-batch ``mb``: tokens [b, T] (first chunk) or x [b, T, C].

        Returns x [b, T, C], or the mean loss on the last chunk. With ``keep`` the caches
        are saved for :meth:`backward`.
        """
        p, ar = self.flat.params, self.allreduce
        emb = None
        if chunk.first:
            x, emb = M.embed_forward(p, inp, self.vocab_start, ar)
        else:
            x = inp
        saved = []
        for layer in chunk.layers:
            x_in = x
            x, cache = M.block_forward(p, layer, x, self.heads, ar)
            saved.append(x_in if self.recompute else cache)
        if not chunk.last:
            if keep:
                self._saved[(mb, chunk.index)] = (emb, saved, None)
            return x
        assert targets is not None
        loss, head = M.head_forward(p, x, targets, self.vocab_start, ar, self.head_name)
        if keep:
            self._saved[(mb, chunk.index)] = (emb, saved, head)
        return loss

    def backward(self, chunk: Chunk, mb: int, dout: np.ndarray | None, dloss: float,
                 ready: GradsReady | None = None) -> np.ndarray | None:
        """Backward of ``chunk`` for ``mb``: adds parameter gradients into the flat buffer.

        ``dout`` [b, T, C] is the gradient of the chunk's output (None on the last chunk,
        which starts from ``dloss``, the weight of this micro-batch's mean loss). Returns
        dx [b, T, C], or None on the first chunk. ``ready(names)`` is told as each layer's
        gradients are complete.
        """
        emb, saved, head = self._saved.pop((mb, chunk.index))
        p, g, ar = self.flat.params, self.flat.grads, self.allreduce
        if chunk.last:
            dout = M.head_backward(dloss, head, g, p, ar)
            _notify(ready, [*LN_F, self.head_name] if self.head_name != WTE else list(LN_F))
        assert dout is not None
        for layer, item in zip(reversed(chunk.layers), reversed(saved)):
            cache = item
            if self.recompute:
                with self.timers.region("recompute"):
                    _, cache = M.block_forward(p, layer, item, self.heads, ar)
            dout = M.block_backward(dout, cache, g, layer, ar)
            _notify(ready, list(layer_shapes(self.model, layer)))
        if chunk.first:
            M.embed_backward(dout, emb, g)
            _notify(ready, [WTE, WPE])
            return None
        return dout

    def pending(self) -> int:
        """Micro-batches whose forward has run and backward has not."""
        return len(self._saved)


def _notify(ready: GradsReady | None, names: list[str]) -> None:
    if ready is not None:
        ready(names)


def local_entries(model: ModelSpec, names: list[str], tp: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, local shape) of each tensor under ``tp``-way tensor parallelism."""
    shapes = global_shapes(model)
    return [(n, local_shape(n, shapes[WTE if n == LM_HEAD else n], tp)) for n in names]


def norm_names(names: list[str], tp_rank: int, tied_copy: bool) -> set[str]:
    """Tensors whose gradients this rank counts in the global gradient norm.

    Tensor-split tensors count on every tensor rank (each holds a different part);
    replicated ones only on tensor rank 0; the last stage's copy of the tied embedding not
    at all (the first stage counts it), so that each parameter counts once.
    """
    out = set()
    for n in names:
        if n == LM_HEAD and tied_copy:
            continue
        if split_kind(n) != "rep" or tp_rank == 0:
            out.add(n)
    return out


def decay_names(names: list[str]) -> set[str]:
    """Tensors with weight decay: the matrices and embeddings (two or more dimensions)."""
    return {n for n in names if n.endswith(".weight") and ".ln_" not in n
            and not n.startswith("transformer.ln_")}
