"""The tensor table of a model: every tensor's name, global shape, split and place.

One table, built from the :class:`ModelSpec` by :func:`tensor_table`, answers for both
engines and for the checkpoint, evaluation and release code: which tensors the model has
(Hugging Face ``GPT2LMHeadModel`` names and Conv1D layouts, so a consolidated checkpoint
loads into ``transformers`` unchanged), how each splits over tensor-parallel ranks
(:mod:`fugaku_sim.tensors.split`), which part of the model holds it (the embedding on the
first virtual pipeline stage, transformer block i wherever layer i is, the head on the last
virtual stage), whether weight decay applies, whether it is a normalisation parameter, and
how GPT-2 initialises it.

``lm_head.weight`` with tied embeddings is the copy of the token embedding that the last
pipeline stage keeps when it is not also the first (Megatron-LM's
``word_embeddings_for_head``); its gradient is summed with the embedding's, it is never in a
consolidated checkpoint, and a rank that holds ``wte`` itself uses that instead. With untied
embeddings ``lm_head.weight`` is a tensor of its own.

A model family with other tensors (RMSNorm without bias, a gated MLP with three matrices,
grouped-query attention through :func:`~fugaku_sim.tensors.split.qkv_split`, no position
table) adds its rows here, in a function like :func:`gpt2_rows`; sizes per rank, checkpoint
contents and the trainer's buffers all follow from the rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors.split import (
    COL,
    REP,
    ROW,
    VOCAB,
    Split,
    local_shape,
    qkv_split,
    shard,
    unshard,
)

Part = Literal["embedding", "block", "head"]
#: GPT-2's initialisation (Radford et al. 2019, section 2.3; Hugging Face
#: ``GPT2PreTrainedModel._init_weights``): normal with std 0.02, the residual projections
#: scaled by 1/sqrt(2 layers), norm weights 1, biases 0
Init = Literal["normal", "normal_residual", "ones", "zeros"]

WTE = "transformer.wte.weight"
WPE = "transformer.wpe.weight"
LM_HEAD = "lm_head.weight"
LN_F = ("transformer.ln_f.weight", "transformer.ln_f.bias")


def layer_name(layer: int, suffix: str) -> str:
    """``transformer.h.{layer}.{suffix}``."""
    return f"transformer.h.{layer}.{suffix}"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model: a row of the table."""

    name: str
    shape: tuple[int, ...]  # global shape
    split: Split
    part: Part
    layer: int | None = None  # the transformer layer of a block tensor
    decay: bool = False  # weight decay applies (matrices and embeddings)
    norm: bool = False  # a normalisation's scale or shift
    init: Init = "normal"
    tied_to: str | None = None  # a kept-equal copy of that tensor; never checkpointed

    @property
    def size(self) -> int:
        """Elements of the whole tensor."""
        return math.prod(self.shape)

    def local_shape(self, tp: int) -> tuple[int, ...]:
        """Shape of one tensor rank's part under ``tp``-way tensor parallelism."""
        return local_shape(self.shape, self.split, tp)

    def local_size(self, tp: int) -> int:
        """Elements of one tensor rank's part."""
        return math.prod(self.local_shape(tp))


def _norm(name: str, width: int, part: Part, layer: int | None = None) -> list[TensorInfo]:
    """A layer norm's weight and bias [C], replicated on every tensor rank."""
    return [TensorInfo(f"{name}.weight", (width,), REP, part, layer, norm=True, init="ones"),
            TensorInfo(f"{name}.bias", (width,), REP, part, layer, norm=True, init="zeros")]


def gpt2_block(model: ModelSpec, layer: int) -> list[TensorInfo]:
    """The tensors of transformer block ``layer`` of a GPT-2, in Hugging Face order.

    The biases of the row-parallel layers are added after the all-reduce, so every rank
    holds them whole (Megatron-LM's ``RowParallelLinear``).
    """
    c, f = model.hidden, model.ffn
    kv_heads = model.heads  # multi-head attention: as many key/value heads as query heads

    def t(suffix: str, shape: tuple[int, ...], split: Split, decay: bool = False,
          init: Init = "zeros") -> TensorInfo:
        return TensorInfo(layer_name(layer, suffix), shape, split, "block", layer, decay,
                          init=init)

    qkv = qkv_split(model.heads, kv_heads)
    width = model.head_dim * (model.heads + 2 * kv_heads)
    return [
        *_norm(layer_name(layer, "ln_1"), c, "block", layer),
        t("attn.c_attn.weight", (c, width), qkv, True, "normal"),
        t("attn.c_attn.bias", (width,), qkv),
        t("attn.c_proj.weight", (c, c), ROW, True, "normal_residual"),
        t("attn.c_proj.bias", (c,), REP),
        *_norm(layer_name(layer, "ln_2"), c, "block", layer),
        t("mlp.c_fc.weight", (c, f), COL, True, "normal"),
        t("mlp.c_fc.bias", (f,), COL),
        t("mlp.c_proj.weight", (f, c), ROW, True, "normal_residual"),
        t("mlp.c_proj.bias", (c,), REP),
    ]


def gpt2_rows(model: ModelSpec) -> list[TensorInfo]:
    """Every tensor of a GPT-2 in Hugging Face order, then the head (copy or own)."""
    c = model.hidden
    rows = [TensorInfo(WTE, (model.vocab, c), VOCAB, "embedding", decay=True),
            TensorInfo(WPE, (model.seq_len, c), REP, "embedding", decay=True)]
    for layer in range(model.layers):
        rows += gpt2_block(model, layer)
    rows += _norm("transformer.ln_f", c, "head")
    tied = WTE if model.tied_embeddings else None
    rows.append(TensorInfo(LM_HEAD, (model.vocab, c), VOCAB, "head", decay=True, tied_to=tied))
    return rows


@dataclass(frozen=True)
class TensorTable:
    """The rows of one model, with look-ups by name and part."""

    model: ModelSpec
    rows: tuple[TensorInfo, ...]

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> TensorInfo:
        """The row of ``name``.

        Raises:
            KeyError: the model has no such tensor.
        """
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @cached_property
    def _by_name(self) -> dict[str, TensorInfo]:
        return {r.name: r for r in self.rows}

    @cached_property
    def _blocks(self) -> dict[int, list[TensorInfo]]:
        out: dict[int, list[TensorInfo]] = {}
        for r in self.rows:
            if r.layer is not None:
                out.setdefault(r.layer, []).append(r)
        return out

    def source(self, name: str) -> str:
        """The tensor whose values ``name`` holds: itself, or what a tied copy copies."""
        return self[name].tied_to or name

    def shard(self, name: str, full: np.ndarray, tp: int, index: int) -> np.ndarray:
        """Tensor rank ``index``'s part of ``full``, the global value of ``name``.

        Raises:
            ValueError: ``tp`` does not divide the split dimension.
        """
        return shard(full, self[name].split, tp, index)

    def unshard(self, name: str, parts: list[np.ndarray]) -> np.ndarray:
        """The global value of ``name`` from every tensor rank's part, in rank order."""
        return unshard(parts, self[name].split)

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and global shape of every tensor a consolidated checkpoint holds, in order
        (tied copies left out)."""
        return {r.name: r.shape for r in self.rows if r.tied_to is None}

    def parameters(self) -> int:
        """Parameters of the model (a tied copy counted once, with what it copies)."""
        return sum(r.size for r in self.rows if r.tied_to is None)

    def block(self, layer: int) -> list[TensorInfo]:
        """The rows of transformer block ``layer``."""
        return self._blocks[layer]

    def part(self, part: Literal["embedding", "head"]) -> list[TensorInfo]:
        """The rows of the embedding or of the head."""
        return [r for r in self.rows if r.part == part]


@lru_cache(maxsize=64)
def tensor_table(model: ModelSpec) -> TensorTable:
    """The tensor table of ``model`` (cached: specs are frozen)."""
    return TensorTable(model, tuple(gpt2_rows(model)))
