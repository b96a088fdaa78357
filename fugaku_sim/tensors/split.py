"""How one tensor splits over the ranks of a tensor-parallel group.

Megatron-LM's splits (Shoeybi et al. 2019, section 3; the vocabulary-parallel embedding and
cross-entropy of Megatron-LM's ``VocabParallelEmbedding``), in Hugging Face's Conv1D layout
(``[in, out]``, so ``y = x @ W + b``):

=========  ==========================================  ====================================
kind       axis                                        examples (GPT-2)
=========  ==========================================  ====================================
``rep``    none: the whole tensor on every rank        layer norms, wpe, row-layer biases
``vocab``  0, the vocabulary rows                      wte [V, C], the head's copy [V, C]
``col``    -1, the output features                     mlp.c_fc weight [C, F] and bias [F]
``row``    0, the input features                       attn.c_proj.weight, mlp.c_proj.weight
``qkv``    -1, blocks of heads, each split by heads    attn.c_attn weight [C, 3C], bias [3C]
=========  ==========================================  ====================================

``qkv`` is a fused projection whose last axis holds ``len(heads)`` blocks (query, key,
value), block i of ``heads[i]`` heads of one common width. Each block splits by heads: rank r
of t holds heads [r h / t, (r + 1) h / t) when t divides h; when h divides t (grouped-query
attention with fewer key/value heads than ranks) the t / h ranks that share a head each hold
a copy of it, rank r holding head r h / t (Megatron-LM and vLLM replicate key/value heads so).

The axes above are those of the Conv1D layout. A tensor stored the other way round (Hugging
Face's ``nn.Linear`` layout ``[out, in]``, as Llama's projections are) names its axis:
``Split("col", axis=0)`` splits a column-parallel layer's output features there,
``Split("row", axis=-1)`` a row-parallel layer's input features, and a head-split
projection is ``Split("qkv", heads=(h,), axis=0)``.

A vocabulary that t does not divide is padded (Megatron-LM's ``_vocab_size_with_padding``
rounds it up): :func:`local_shape` gives every rank ceil(V / t) rows. The trainer refuses
such layouts, so :func:`shard` requires t to divide V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fugaku_sim.parallel import shard_range

SplitKind = Literal["rep", "vocab", "col", "row", "qkv"]


_DEFAULT_AXIS: dict[SplitKind, int | None] = {"rep": None, "vocab": 0, "row": 0, "col": -1,
                                              "qkv": -1}


@dataclass(frozen=True)
class Split:
    """How a tensor splits over tensor-parallel ranks; ``heads`` only for ``qkv``;
    ``along`` the storage axis when it is not the kind's Conv1D one (see the module)."""

    kind: SplitKind
    heads: tuple[int, ...] = ()
    along: int | None = None

    @property
    def axis(self) -> int | None:
        """The split axis (None: replicated)."""
        if self.kind == "rep":
            return None
        return self.along if self.along is not None else _DEFAULT_AXIS[self.kind]


REP, VOCAB, COL, ROW = Split("rep"), Split("vocab"), Split("col"), Split("row")


def qkv_split(q_heads: int, kv_heads: int) -> Split:
    """A fused query-key-value projection: ``q_heads`` query heads, ``kv_heads`` key and as
    many value heads (equal for multi-head attention, fewer for grouped-query attention)."""
    return Split("qkv", (q_heads, kv_heads, kv_heads))


def heads_split(heads: int, axis: int) -> Split:
    """A projection of ``heads`` heads along ``axis`` (Llama's q_proj, k_proj, v_proj:
    ``[heads x head size, C]``, axis 0), split by heads or copied when heads < tp."""
    return Split("qkv", (heads,), axis)


def _block_heads(heads: int, tp: int, index: int) -> range:
    """Heads of one qkv block that tensor rank ``index`` of ``tp`` holds."""
    if heads % tp == 0:
        return shard_range(heads, tp, index)
    if tp % heads == 0:
        head = index * heads // tp
        return range(head, head + 1)
    raise ValueError(f"{heads} heads neither split over nor replicate onto {tp} ranks")


def local_shape(shape: tuple[int, ...], split: Split, tp: int) -> tuple[int, ...]:
    """Shape of one tensor rank's part of a tensor of global ``shape``.

    Raises:
        ValueError: ``tp`` does not divide a column, row or head split.
    """
    if split.kind == "rep" or tp == 1:
        return shape
    axis = split.axis % len(shape)  # type: ignore[operator]
    out = list(shape)
    if split.kind == "vocab":
        out[axis] = -(-shape[axis] // tp)  # padded vocabulary: ceil(V / tp) rows
    elif split.kind in ("row", "col"):
        out[axis] = len(shard_range(shape[axis], tp, 0))
    else:
        width = shape[axis] // sum(split.heads)
        out[axis] = width * sum(len(_block_heads(h, tp, 0)) for h in split.heads)
    return tuple(out)


def _qkv_columns(width: int, split: Split, tp: int, index: int) -> np.ndarray:
    """Column indices, along the fused axis, of rank ``index``'s heads of every block."""
    cols: list[np.ndarray] = []
    start = 0
    for heads in split.heads:
        for h in _block_heads(heads, tp, index):
            cols.append(np.arange(start + h * width, start + (h + 1) * width))
        start += heads * width
    return np.concatenate(cols)


def shard(full: np.ndarray, split: Split, tp: int, index: int) -> np.ndarray:
    """Tensor rank ``index``'s part of ``full`` (a contiguous copy).

    Raises:
        ValueError: ``tp`` does not divide the split dimension (the vocabulary included).
    """
    if split.kind == "rep":
        return np.array(full, copy=True)
    axis = split.axis % full.ndim  # type: ignore[operator]
    if split.kind in ("vocab", "row", "col"):
        r = shard_range(full.shape[axis], tp, index)
        return np.ascontiguousarray(np.take(full, np.arange(r.start, r.stop), axis=axis))
    width = full.shape[axis] // sum(split.heads)
    return np.ascontiguousarray(np.take(full, _qkv_columns(width, split, tp, index), axis=axis))


def unshard(parts: list[np.ndarray], split: Split) -> np.ndarray:
    """The full tensor from the parts of every tensor rank, in rank order."""
    tp = len(parts)
    if split.kind == "rep" or tp == 1:
        return np.array(parts[0], copy=True)
    axis = split.axis % parts[0].ndim  # type: ignore[operator]
    if split.kind in ("vocab", "row", "col"):
        return np.concatenate(parts, axis=axis)
    local_width = parts[0].shape[axis]
    width = local_width // sum(len(_block_heads(h, tp, 0)) for h in split.heads)
    shape = list(parts[0].shape)
    shape[axis] = width * sum(split.heads)
    full = np.empty(shape, dtype=parts[0].dtype)
    moved = np.moveaxis(full, axis, -1)  # a view: writing it fills ``full``
    for index, part in enumerate(parts):  # copies of a replicated head are equal: any will do
        moved[..., _qkv_columns(width, split, tp, index)] = np.moveaxis(part, axis, -1)
    return full
