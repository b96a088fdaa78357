"""Global parameter names and shapes, and how each tensor splits over tensor-parallel ranks.

Names and layouts are Hugging Face ``GPT2LMHeadModel``'s (``transformer.h.0.attn.c_attn.weight``
is [C, 3C], in x out, as ``Conv1D`` stores it), so a consolidated checkpoint loads into
``transformers`` unchanged. ``lm_head.weight`` is the tied copy of the token embedding that the
last pipeline stage keeps when it is not also the first (as Megatron-LM does); it never
appears in a checkpoint.

Tensor-parallel splits (Megatron-LM, Shoeybi et al. 2019, section 3):

=========  =====================================================  ==========================
kind       tensors                                                split
=========  =====================================================  ==========================
``rep``    layer norms, wpe, biases of the row-parallel layers    replicated on every rank
``vocab``  wte, lm_head [V, C]                                    rows (vocabulary) in tp
``col``    mlp.c_fc weight [C, F] and bias [F]                    last axis in tp
``qkv``    attn.c_attn weight [C, 3C] and bias [3C]               q, k and v each by heads
``row``    attn.c_proj.weight [C, C], mlp.c_proj.weight [F, C]    first axis in tp
=========  =====================================================  ==========================
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fugaku_sim.parallel import shard_range
from fugaku_sim.spec import ModelSpec

SplitKind = Literal["rep", "vocab", "col", "qkv", "row"]

WTE = "transformer.wte.weight"
WPE = "transformer.wpe.weight"
LM_HEAD = "lm_head.weight"
LN_F = ("transformer.ln_f.weight", "transformer.ln_f.bias")

# per-layer tensors: suffix -> split kind
LAYER_TENSORS: dict[str, SplitKind] = {
    "ln_1.weight": "rep",
    "ln_1.bias": "rep",
    "attn.c_attn.weight": "qkv",
    "attn.c_attn.bias": "qkv",
    "attn.c_proj.weight": "row",
    "attn.c_proj.bias": "rep",
    "ln_2.weight": "rep",
    "ln_2.bias": "rep",
    "mlp.c_fc.weight": "col",
    "mlp.c_fc.bias": "col",
    "mlp.c_proj.weight": "row",
    "mlp.c_proj.bias": "rep",
}


def layer_name(layer: int, suffix: str) -> str:
    """``transformer.h.{layer}.{suffix}``."""
    return f"transformer.h.{layer}.{suffix}"


def layer_shapes(model: ModelSpec, layer: int) -> dict[str, tuple[int, ...]]:
    """Global shapes of the tensors of one transformer block."""
    c, f = model.hidden, model.ffn
    shapes = {
        "ln_1.weight": (c,), "ln_1.bias": (c,),
        "attn.c_attn.weight": (c, 3 * c), "attn.c_attn.bias": (3 * c,),
        "attn.c_proj.weight": (c, c), "attn.c_proj.bias": (c,),
        "ln_2.weight": (c,), "ln_2.bias": (c,),
        "mlp.c_fc.weight": (c, f), "mlp.c_fc.bias": (f,),
        "mlp.c_proj.weight": (f, c), "mlp.c_proj.bias": (c,),
    }
    return {layer_name(layer, k): v for k, v in shapes.items()}


def global_shapes(model: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor of the model in Hugging Face order (tied lm_head omitted)."""
    shapes: dict[str, tuple[int, ...]] = {
        WTE: (model.vocab, model.hidden),
        WPE: (model.seq_len, model.hidden),
    }
    for layer in range(model.layers):
        shapes.update(layer_shapes(model, layer))
    shapes[LN_F[0]] = (model.hidden,)
    shapes[LN_F[1]] = (model.hidden,)
    return shapes


def split_kind(name: str) -> SplitKind:
    """How ``name`` splits over tensor-parallel ranks.

    Raises:
        KeyError: not a GPT-2 tensor name.
    """
    if name in (WTE, LM_HEAD):
        return "vocab"
    if name == WPE or name in LN_F:
        return "rep"
    if name.startswith("transformer.h."):
        return LAYER_TENSORS[name.split(".", 3)[3]]
    raise KeyError(name)


def shard(name: str, full: np.ndarray, tp: int, index: int) -> np.ndarray:
    """Tensor-parallel rank ``index``'s part of ``full`` (a contiguous copy).

    Raises:
        ValueError: the split dimension is not divisible by ``tp``.
    """
    kind = split_kind(name)
    if kind == "rep":
        return np.array(full, copy=True)
    if kind in ("vocab", "row"):
        return np.ascontiguousarray(full[_slice(full.shape[0], tp, index)])
    if kind == "col":
        return np.ascontiguousarray(full[..., _slice(full.shape[-1], tp, index)])
    third = full.shape[-1] // 3  # qkv: [.., q | k | v], each split by heads
    parts = [full[..., j * third:(j + 1) * third][..., _slice(third, tp, index)] for j in range(3)]
    return np.ascontiguousarray(np.concatenate(parts, axis=-1))


def unshard(name: str, shards: list[np.ndarray]) -> np.ndarray:
    """The full tensor from the parts of every tensor-parallel rank, in rank order."""
    kind = split_kind(name)
    if kind == "rep":
        return np.array(shards[0], copy=True)
    if kind in ("vocab", "row"):
        return np.concatenate(shards, axis=0)
    if kind == "col":
        return np.concatenate(shards, axis=-1)
    thirds = [np.split(s, 3, axis=-1) for s in shards]
    return np.concatenate([np.concatenate([t[j] for t in thirds], axis=-1) for j in range(3)],
                          axis=-1)


def local_shape(name: str, shape: tuple[int, ...], tp: int) -> tuple[int, ...]:
    """Shape of one tensor-parallel rank's part of a tensor of global ``shape``."""
    kind = split_kind(name)
    if kind == "rep":
        return shape
    if kind in ("vocab", "row"):
        return (shape[0] // tp, *shape[1:])
    return (*shape[:-1], shape[-1] // tp)


def _slice(n: int, parts: int, index: int) -> slice:
    r = shard_range(n, parts, index)
    return slice(r.start, r.stop)
