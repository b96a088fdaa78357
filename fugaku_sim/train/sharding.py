"""How a rank lays out its tensors for its ZeRO stage: the segments of its flat buffer.

- ZeRO 0-2: the segments are the gradient buckets (:func:`fugaku_sim.train.grad_reduce.
  bucket_groups`, about ``grad_bucket_MB`` each); under ZeRO-2 no bucket spans two model
  chunks, since each micro-batch's bucket is reduced as soon as that chunk's backward has
  filled it.
- ZeRO-3: the segments are the units gathered whole (:func:`unit_groups`), which are also
  the buckets their gradients are reduce-scattered in; ``grad_bucket_MB`` does not apply.

Every segment is padded to a multiple of dp (:class:`fugaku_sim.train.buffers.FlatParams`);
the buffer holds no gradients under ZeRO-2 and no weights either under ZeRO-3.
"""

from __future__ import annotations

import math

from fugaku_sim.parallel import ModelChunk
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec
from fugaku_sim.tensors import TensorTable, tensor_table
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.grad_reduce import bucket_groups
from fugaku_sim.train.stage import local_entries, stage_tensor_names
from fugaku_sim.train.weights import ROOT, Unit


def unit_groups(names: list[str], table: TensorTable) -> list[list[str]]:
    """ZeRO-3 units of a stage's tensors, in buffer order: the root (everything outside the
    transformer blocks: embeddings, final norm, head), then each block."""
    root = [n for n in names if table[n].layer is None]
    layers = sorted({layer for n in names if (layer := table[n].layer) is not None})
    blocks = [[n for n in names if table[n].layer == layer] for layer in layers]
    return ([root] if root else []) + blocks


def flat_buffer(model: ModelSpec, train: TrainSpec, layout: Layout, chunks: list[ModelChunk],
                zero: int, tied: frozenset[str]) -> tuple[FlatParams, dict[Unit, int]]:
    """The flat buffer of a stage holding ``chunks`` under ZeRO stage ``zero`` (0 when
    dp = 1), and, under ZeRO-3, the segment of each unit (``ROOT`` or a layer)."""
    table = tensor_table(model)
    names = stage_tensor_names(model, chunks)
    entries = local_entries(model, names, layout.tp)
    units: dict[Unit, int] = {}
    if zero == 3:
        groups = unit_groups(names, table)
        for i, group in enumerate(groups):
            layer = table[group[0]].layer
            units[ROOT if layer is None else layer] = i
    else:
        breaks = frozenset(stage_tensor_names(model, [ch])[0] for ch in chunks) \
            if zero == 2 else frozenset()
        groups = bucket_groups([(n, math.prod(shape)) for n, shape in entries],
                               train.grad_bucket_MB * 2**20, tied, breaks)
    flat = FlatParams(entries, pad_to=layout.dp, groups=groups, hold_data=zero < 3,
                      hold_grad=zero < 2)
    return flat, units
