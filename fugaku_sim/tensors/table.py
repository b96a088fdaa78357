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

Each model family has its rows function: :func:`gpt2_rows` (Hugging Face
``GPT2LMHeadModel``: Conv1D ``[in, out]`` weights, a fused QKV projection, learned
positions) and :func:`llama_rows` (``LlamaForCausalLM``: ``nn.Linear`` ``[out, in]`` weights,
separate q/k/v projections with ``kv_heads`` key/value heads, RMSNorm scales without bias,
a gated MLP of three matrices, no position table, biases only where ``model.bias``). Sizes
per rank, checkpoint contents and the trainer's buffers all follow from the rows. Every row
also has a ``role`` that means the same in every family (``attn_out`` is GPT-2's
``attn.c_proj.weight`` and Llama's ``self_attn.o_proj.weight``), so code that needs a
particular tensor asks :meth:`TensorTable.find` instead of naming one family's tensor.
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
    heads_split,
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
    role: str = ""  # what the tensor does, the same in every family (see ROLES)

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

    def features(self, tp: int) -> tuple[int, int]:
        """(input, output) features of one tensor rank's part of a linear layer's weight, in
        either storage layout: a column-, head- or vocabulary-split weight is split along its
        output axis, a row-split one along its input axis (:mod:`fugaku_sim.tensors.split`).
        GPT-2's ``attn.c_attn.weight`` [C, 3C] at tp 4 gives (C, 3C/4); Llama's
        ``self_attn.o_proj.weight`` [C, C] gives (C/4, C).

        Raises:
            ValueError: the tensor is not a split two-dimensional weight.
        """
        axis = self.split.axis
        if len(self.shape) != 2 or axis is None:
            raise ValueError(f"{self.name} is not a split linear weight")
        local = self.local_shape(tp)
        split_axis = axis % 2
        along_output = self.split.kind != "row"
        out_axis = split_axis if along_output else 1 - split_axis
        return local[1 - out_axis], local[out_axis]


#: the roles rows may take: embeddings, per-block tensors, the head
ROLES = (
    "tok_embed", "pos_embed",
    "attn_norm", "attn_norm_bias", "qkv", "qkv_bias", "q", "k", "v", "q_bias", "k_bias",
    "v_bias", "attn_out", "attn_out_bias",
    "mlp_norm", "mlp_norm_bias", "mlp_in", "mlp_in_bias", "mlp_gate", "mlp_gate_bias",
    "mlp_up", "mlp_up_bias", "mlp_out", "mlp_out_bias",
    "final_norm", "final_norm_bias", "head",
)


def _norm(name: str, width: int, part: Part, layer: int | None, role: str,
          bias: bool = True, suffix: str = ".weight") -> list[TensorInfo]:
    """A norm's scale [C] (and shift, for a layer norm), replicated on every tensor rank."""
    rows = [TensorInfo(f"{name}{suffix}", (width,), REP, part, layer, norm=True, init="ones",
                       role=role)]
    if bias:
        rows.append(TensorInfo(f"{name}.bias", (width,), REP, part, layer, norm=True,
                               init="zeros", role=f"{role}_bias"))
    return rows


def gpt2_block(model: ModelSpec, layer: int) -> list[TensorInfo]:
    """The tensors of transformer block ``layer`` of a GPT-2, in Hugging Face order.

    The biases of the row-parallel layers are added after the all-reduce, so every rank
    holds them whole (Megatron-LM's ``RowParallelLinear``).
    """
    c, f = model.hidden, model.ffn
    kv_heads = model.kv  # fewer than heads: grouped-query attention in the fused projection
    norm_bias = model.norm == "layernorm"

    def t(suffix: str, shape: tuple[int, ...], split: Split, role: str, decay: bool = False,
          init: Init = "zeros") -> list[TensorInfo]:
        if not decay and not model.bias:  # a bias of a model without biases
            return []
        return [TensorInfo(layer_name(layer, suffix), shape, split, "block", layer, decay,
                           init=init, role=role)]

    qkv = qkv_split(model.heads, kv_heads)
    width = model.head_dim * (model.heads + 2 * kv_heads)
    return [
        *_norm(layer_name(layer, "ln_1"), c, "block", layer, "attn_norm", norm_bias),
        *t("attn.c_attn.weight", (c, width), qkv, "qkv", True, "normal"),
        *t("attn.c_attn.bias", (width,), qkv, "qkv_bias"),
        *t("attn.c_proj.weight", (c, c), ROW, "attn_out", True, "normal_residual"),
        *t("attn.c_proj.bias", (c,), REP, "attn_out_bias"),
        *_norm(layer_name(layer, "ln_2"), c, "block", layer, "mlp_norm", norm_bias),
        *t("mlp.c_fc.weight", (c, f), COL, "mlp_in", True, "normal"),
        *t("mlp.c_fc.bias", (f,), COL, "mlp_in_bias"),
        *t("mlp.c_proj.weight", (f, c), ROW, "mlp_out", True, "normal_residual"),
        *t("mlp.c_proj.bias", (c,), REP, "mlp_out_bias"),
    ]


def gpt2_rows(model: ModelSpec) -> list[TensorInfo]:
    """Every tensor of a GPT-2 in Hugging Face order, then the head (copy or own)."""
    c = model.hidden
    rows = [TensorInfo(WTE, (model.vocab, c), VOCAB, "embedding", decay=True, role="tok_embed"),
            TensorInfo(WPE, (model.seq_len, c), REP, "embedding", decay=True, role="pos_embed")]
    for layer in range(model.layers):
        rows += gpt2_block(model, layer)
    rows += _norm("transformer.ln_f", c, "head", None, "final_norm", model.norm == "layernorm")
    tied = WTE if model.tied_embeddings else None
    rows.append(TensorInfo(LM_HEAD, (model.vocab, c), VOCAB, "head", decay=True, tied_to=tied,
                           role="head"))
    return rows


LLAMA_EMBED = "model.embed_tokens.weight"
LLAMA_NORM = "model.norm.weight"


def llama_layer_name(layer: int, suffix: str) -> str:
    """``model.layers.{layer}.{suffix}``."""
    return f"model.layers.{layer}.{suffix}"


def llama_block(model: ModelSpec, layer: int) -> list[TensorInfo]:
    """The tensors of decoder layer ``layer`` of a Llama, in Hugging Face order.

    Weights are ``nn.Linear``'s ``[out, in]``: the column-parallel q/k/v, gate and up
    projections split their output features (axis 0; q/k/v by heads, key/value heads copied
    when fewer than tp), the row-parallel o and down projections their input features
    (axis -1); biases (``model.bias``: Hugging Face's ``attention_bias`` and ``mlp_bias``)
    follow their layer's output split, those of row-parallel layers are whole on every rank.
    Initialisation as Hugging Face's ``LlamaPreTrainedModel._init_weights``: normal with
    std ``initializer_range`` (0.02) for every matrix, no residual scaling.
    """
    c, f, d = model.hidden, model.ffn, model.head_dim
    q, kv = model.heads * d, model.kv * d

    def t(suffix: str, shape: tuple[int, ...], split: Split, role: str) -> list[TensorInfo]:
        weight = suffix.endswith(".weight")
        if not weight and not model.bias:
            return []
        return [TensorInfo(llama_layer_name(layer, suffix), shape, split, "block", layer,
                           decay=weight, init="normal" if weight else "zeros", role=role)]

    col, row = Split("col", along=0), Split("row", along=-1)
    q_split, kv_split = heads_split(model.heads, 0), heads_split(model.kv, 0)
    return [
        *_norm(llama_layer_name(layer, "input_layernorm"), c, "block", layer, "attn_norm",
               model.norm == "layernorm"),
        *t("self_attn.q_proj.weight", (q, c), q_split, "q"),
        *t("self_attn.q_proj.bias", (q,), q_split, "q_bias"),
        *t("self_attn.k_proj.weight", (kv, c), kv_split, "k"),
        *t("self_attn.k_proj.bias", (kv,), kv_split, "k_bias"),
        *t("self_attn.v_proj.weight", (kv, c), kv_split, "v"),
        *t("self_attn.v_proj.bias", (kv,), kv_split, "v_bias"),
        *t("self_attn.o_proj.weight", (c, q), row, "attn_out"),
        *t("self_attn.o_proj.bias", (c,), REP, "attn_out_bias"),
        *_norm(llama_layer_name(layer, "post_attention_layernorm"), c, "block", layer,
               "mlp_norm", model.norm == "layernorm"),
        *t("mlp.gate_proj.weight", (f, c), col, "mlp_gate"),
        *t("mlp.gate_proj.bias", (f,), col, "mlp_gate_bias"),
        *t("mlp.up_proj.weight", (f, c), col, "mlp_up"),
        *t("mlp.up_proj.bias", (f,), col, "mlp_up_bias"),
        *t("mlp.down_proj.weight", (c, f), row, "mlp_out"),
        *t("mlp.down_proj.bias", (c,), REP, "mlp_out_bias"),
    ]


def llama_rows(model: ModelSpec) -> list[TensorInfo]:
    """Every tensor of a Llama in Hugging Face order, then the head (copy or own)."""
    c = model.hidden
    rows = [TensorInfo(LLAMA_EMBED, (model.vocab, c), VOCAB, "embedding", decay=True,
                       role="tok_embed")]
    for layer in range(model.layers):
        rows += llama_block(model, layer)
    rows += _norm("model.norm", c, "head", None, "final_norm", model.norm == "layernorm")
    tied = LLAMA_EMBED if model.tied_embeddings else None
    rows.append(TensorInfo(LM_HEAD, (model.vocab, c), VOCAB, "head", decay=True, tied_to=tied,
                           role="head"))
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

    @cached_property
    def _by_role(self) -> dict[tuple[str, int | None], TensorInfo]:
        return {(r.role, r.layer): r for r in self.rows}

    def find(self, role: str, layer: int | None = None) -> TensorInfo | None:
        """The row of ``role`` (in block ``layer`` for a block tensor), or None when the
        model has no such tensor (no biases, no position table, a fused QKV ...).

        Raises:
            ValueError: ``role`` is not one of :data:`ROLES`.
        """
        if role not in ROLES:
            raise ValueError(f"unknown tensor role {role!r}")
        return self._by_role.get((role, layer))

    def part(self, part: Literal["embedding", "head"]) -> list[TensorInfo]:
        """The rows of the embedding or of the head."""
        return [r for r in self.rows if r.part == part]


@lru_cache(maxsize=64)
def tensor_table(model: ModelSpec) -> TensorTable:
    """The tensor table of ``model`` (cached: specs are frozen)."""
    rows = llama_rows(model) if model.family == "llama" else gpt2_rows(model)
    return TensorTable(model, tuple(rows))
