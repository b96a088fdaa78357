"""The part of the model one rank holds: its model chunks, their parameters and caches.

A pipeline stage holds the model chunks :func:`fugaku_sim.tensors.layout_chunks` gives it
(one, or ``virtual_stages`` under the interleaved schedule); virtual stage 0 also holds the
embeddings and the last virtual stage the final layer norm and the LM head. Which tensors
that is, and this rank's tensor-parallel part of each, come from the model's tensor table
(:mod:`fugaku_sim.tensors`); the blocks are the model family's (GPT-2 or Llama,
:func:`fugaku_sim.train.model.block_forward`). The forward of micro-batch ``mb`` through a
chunk keeps its caches until the backward of the same pair, each layer's freed once its
backward is done; a stage that recomputes keeps only each layer's input and reruns the
layer's forward just before its backward (full activation recomputation, Chen et al. 2016;
Megatron-LM), timed as ``recompute``. Selective recomputation (Korthikanti et al. 2022) keeps everything but the
attention probabilities and rebuilds those before the block's backward, also timed as
``recompute``. A layer takes its weights from a weight source (the flat buffer, or a ZeRO-3
unit gathered for it) and adds its gradients into a gradient sink (the flat buffer, or a
ZeRO-2/3 bucket), and tells the memory tracker what it keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from fugaku_sim.parallel import ModelChunk
from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors import held_tensors, layout_chunks, tensor_table
from fugaku_sim.train import model as M
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.caches import cache_bytes, restore_probs
from fugaku_sim.train.layers import SINGLE_RANK, Region
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.params import rank_share
from fugaku_sim.train.timers import Timers
from fugaku_sim.train.weights import ROOT, FullWeights

GradsReady = Callable[[list[str]], None]
FLOWING = "activation between layers"  # memory key of the x (or dx) passed layer to layer


def stage_tensor_names(model: ModelSpec, chunks: list[ModelChunk]) -> list[str]:
    """Global names of the tensors a stage holds, in flat-buffer (forward) order.

    The head uses the token embedding itself when the stage also holds it, else the tied
    copy ``lm_head.weight`` (or, untied, its own ``lm_head.weight``).
    """
    return [r.name for r in held_tensors(tensor_table(model), chunks)]


class StageModel:
    """Forward and backward of this rank's chunks over its flat parameters.

    Options beyond the full recomputation of ``recompute``: ``selective`` keeps every
    activation but the attention probabilities (recomputed before each block's backward,
    timed as ``recompute``); ``weights`` supplies each unit's weights (default: the flat
    buffer; :mod:`fugaku_sim.train.weights`); ``grads`` is what the backward adds into
    (default: the flat gradients); ``memory`` is told what the caches hold and measures
    every layer's transient memory. ``region`` is where the tensor-parallel regions begin
    and end (Megatron-LM's f and g over the tensor group, or the sequence-parallel all-gather
    and reduce-scatter: :mod:`fugaku_sim.train.sequence`).
    """

    def __init__(self, model: ModelSpec, layout: Layout, stage: int, tp_rank: int,
                 flat: FlatParams, recompute: bool, timers: Timers,
                 region: Region = SINGLE_RANK, *, selective: bool = False,
                 weights: FullWeights | None = None, grads: Any = None,
                 memory: MemoryTracker | None = None) -> None:
        self.model, self.layout, self.flat = model, layout, flat
        self.chunks = layout_chunks(model, layout, stage)
        self.share = rank_share(model, layout.tp, tp_rank)
        self.table = tensor_table(model)
        self.head_name = M.head_name(model, set(flat.offsets))
        self.recompute, self.timers, self.region = recompute, timers, region
        self.selective = selective and not recompute
        self.weights = weights if weights is not None else FullWeights(flat)
        self.grads = grads if grads is not None else flat.grads
        self.memory = memory if memory is not None else MemoryTracker(enabled=False)
        self._saved: dict[tuple[int, int], Any] = {}

    def _keep(self, key: Hashable, cache: Any, kind: str = "activations",
              less: Any = None) -> None:
        """Tell the tracker what ``cache`` (less what ``less`` holds) keeps, while it
        measures (counting costs a walk over the cache)."""
        if self.memory.measuring:
            held = cache_bytes(cache, self.weights.is_parameter)
            if less is not None:
                held -= cache_bytes(less, self.weights.is_parameter)
            self.memory.hold(kind, key, held)

    def forward(self, chunk: ModelChunk, mb: int, inp: np.ndarray,
                targets: np.ndarray | None, keep: bool = True) -> np.ndarray | float:
        """Run ``chunk`` on micro-batch ``mb``: tokens [b, T] (first chunk) or x [b, T, C].

        Returns x [b, T, C], or the mean loss on the last chunk. With ``keep`` the caches
        are saved for :meth:`backward`.
        """
        w, m, region, mem = self.weights, self.model, self.region, self.memory
        ends = chunk.first or chunk.last
        root = w.acquire(ROOT, chunk.layers[0] if len(chunk.layers) else None) if ends else {}
        emb = None
        if chunk.first:
            with mem.region():
                x, emb = M.embed_forward(root, m, inp, self.share.vocab_start, region)
            mem.hold("workspace", FLOWING, x.nbytes)
        else:
            x = inp  # the message in, which the caller counts
        saved = []
        layers = list(chunk.layers)
        for i, layer in enumerate(layers):
            x_in = x
            p = w.acquire(layer, layers[i + 1] if i + 1 < len(layers) else None)
            with mem.region():
                x, cache = M.block_forward(p, m, layer, x, self.share, region,
                                           keep_probs=not self.selective)
            saved.append(x_in if self.recompute else w.detach(layer, cache))
            del cache, x_in, p  # else alive (a ZeRO-3 unit too) until the next layer's
            w.release(layer)
            if keep:
                self._keep((mb, chunk.index, layer), saved[-1])
            mem.hold("workspace", FLOWING, x.nbytes)  # the activation between layers
        head = None
        out: np.ndarray | float = x
        if chunk.last:
            assert targets is not None
            with mem.region():
                out, head = M.head_forward(root, m, x, targets, self.share.vocab_start,
                                           region, self.head_name)
        mem.drop(FLOWING)
        if keep:
            self._saved[(mb, chunk.index)] = (emb, saved, head)
            self._keep((mb, chunk.index, "ends"), (emb, head))
        elif ends:
            w.release(ROOT)
        return out

    def backward(self, chunk: ModelChunk, mb: int, dout: np.ndarray | None, dloss: float,
                 ready: GradsReady | None = None) -> np.ndarray | None:
        """Backward of ``chunk`` for ``mb``: adds parameter gradients into ``grads``.

        ``dout`` [b, T, C] is the gradient of the chunk's output (None on the last chunk,
        which starts from ``dloss``, the weight of this micro-batch's mean loss). Returns
        dx [b, T, C], or None on the first chunk. ``ready(names)`` is told as each layer's
        gradients are complete.
        """
        emb, saved, head = self._saved.pop((mb, chunk.index))
        w, g, region, mem = self.weights, self.grads, self.region, self.memory
        layers = list(chunk.layers)
        if chunk.last:
            if layers:
                w.prefetch(layers[-1])
            with mem.region():
                dout = M.head_backward(dloss, head, g, w.acquire(ROOT), region)
            w.release(ROOT)
            head = None  # done with: free it now, not when the chunk's backward ends
            self._keep((mb, chunk.index, "ends"), emb)
            mem.hold("workspace", FLOWING, dout.nbytes)
            _notify(ready, self._held(self.table.part("head")))
        assert dout is not None
        for i in reversed(range(len(layers))):
            layer, item = layers[i], saved.pop()
            p = w.acquire(layer, layers[i - 1] if i else None)
            cache = self._backward_cache(p, layer, item, mb, chunk.index)
            with mem.region():
                dout = M.block_backward(dout, cache, g, region)
            del cache, item, p  # the unit's views go with them (ZeRO-3 frees it)
            w.release(layer)
            mem.drop((mb, chunk.index, layer))
            mem.drop("recomputed")
            mem.hold("workspace", FLOWING, dout.nbytes)  # the gradient between layers
            _notify(ready, [r.name for r in self.table.block(layer)])
        if chunk.first:
            with mem.region():
                M.embed_backward(dout, emb, g, self.model, region)
            _notify(ready, self._held(self.table.part("embedding")))
        mem.drop((mb, chunk.index, "ends"))
        mem.drop(FLOWING)
        if chunk.first or chunk.last:
            w.release(ROOT)
        return None if chunk.first else dout

    def _backward_cache(self, p: dict[str, np.ndarray], layer: int, item: Any, mb: int,
                        index: int) -> Any:
        """The cache of ``layer``'s backward: recomputed, or saved with its weights put
        back (and its attention probabilities recomputed under selective recompute)."""
        if self.recompute:
            with self.timers.region("recompute"), self.memory.region():
                _, cache = M.block_forward(p, self.model, layer, item, self.share,
                                           self.region)
            self._keep("recomputed", cache, "workspace")  # Korthikanti's one full layer
            return cache
        cache = self.weights.attach(layer, item)
        if self.selective:
            with self.timers.region("recompute"), self.memory.region():
                cache = restore_probs(cache)
            self._keep("recomputed", cache, "workspace", less=item)  # the probabilities
        return cache

    def _held(self, rows: list[Any]) -> list[str]:
        return [r.name for r in rows if r.name in self.flat.offsets]

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
