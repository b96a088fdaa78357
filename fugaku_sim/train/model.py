"""The GPT-2 model from the layers: embedding, transformer blocks and the tied LM head.

Shape key: B batch, T sequence, C channels, V vocabulary, Cl/Fl/Vl the local shares of the
attention channels, MLP width and vocabulary under tensor parallelism (tp).

Parameters live in a dict keyed by the Hugging Face names of the tensor table
(:mod:`fugaku_sim.tensors`; a rank holds its tensor-parallel part of each). Gradients
accumulate into a dict of the same keys. Tensor parallelism follows Megatron-LM (Shoeybi et al. 2019, figure 3): in each block
the column-parallel QKV and MLP input layers need no communication in the forward, the
row-parallel output layers end with an all-reduce ("g"), and the input gradients of the
column-parallel layers are all-reduced in the backward ("f"). With tp = 1 the all-reduce
callable is the identity and the functions are the single-rank model.

``forward_logits`` is the pure single-rank forward the evaluator imports.
"""

from __future__ import annotations

import math
import zlib
from typing import NamedTuple

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LM_HEAD, LN_F, WPE, WTE, layer_name, tensor_table
from fugaku_sim.train import layers as L

Params = dict[str, np.ndarray]
INIT_STD = 0.02  # GPT-2 / Hugging Face GPT2Config.initializer_range


def init_std(name: str, model: ModelSpec) -> float | None:
    """Standard deviation of the normal initialisation of ``name``; None for constants.

    GPT-2 (Radford et al. 2019, section 2.3) scales the weights of the residual projections
    by 1/sqrt(N), N = 2 x layers residual layers; Hugging Face ``GPT2PreTrainedModel.
    _init_weights`` applies it to every ``c_proj.weight`` (std 0.02 / sqrt(2 layers)).
    Biases start at 0 and layer-norm weights at 1 (the table's ``init`` of each tensor).
    """
    init = tensor_table(model)[name].init
    if init == "normal_residual":
        return INIT_STD / math.sqrt(2 * model.layers)
    return INIT_STD if init == "normal" else None


def init_param(name: str, model: ModelSpec, seed: int) -> np.ndarray:
    """The full (global) initial value of ``name``, FP32, independent of the layout.

    Each tensor draws from its own generator seeded by (seed, crc32(name)), so every rank of
    every layout gets the same numbers for the part it holds; a tied copy draws those of
    the tensor it copies.
    """
    table = tensor_table(model)
    source = table.source(name)
    shape = table[source].shape
    std = init_std(source, model)
    if std is None:
        fill = 1.0 if table[source].init == "ones" else 0.0
        return np.full(shape, fill, dtype=np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)


def init_params(model: ModelSpec, seed: int) -> Params:
    """Every tensor of the model's checkpoint (single rank), Hugging Face names."""
    return {name: init_param(name, model, seed)
            for name in tensor_table(model).checkpoint_shapes()}


# --------------------------------------------------------------------------- block


class BlockCache(NamedTuple):
    ln_1: L.LayerNormCache
    c_attn: L.LinearCache
    attn: L.AttentionCache
    c_proj: L.LinearCache
    ln_2: L.LayerNormCache
    c_fc: L.LinearCache
    gelu: L.GeluCache
    mlp_proj: L.LinearCache


def block_forward(
    p: Params, layer: int, x: np.ndarray, heads: int, allreduce: L.AllReduce = L.no_allreduce,
    keep_probs: bool = True,
) -> tuple[np.ndarray, BlockCache]:
    """One pre-LN transformer block: x + attn(ln_1(x)), then + mlp(ln_2(.)). x [B, T, C].

    ``heads`` is the number of heads this rank holds (heads / tp); ``keep_probs`` False is
    selective recomputation (:func:`fugaku_sim.train.layers.attention_core_forward`).
    """
    n = layer_name(layer, "")
    h, c_ln1 = L.layernorm_forward(x, p[n + "ln_1.weight"], p[n + "ln_1.bias"])
    qkv, c_qkv = L.linear_forward(h, p[n + "attn.c_attn.weight"], p[n + "attn.c_attn.bias"])
    a, c_att = L.attention_forward(qkv, heads, keep_probs)  # [B, T, Cl]
    o, c_proj = L.linear_forward(a, p[n + "attn.c_proj.weight"], None)  # [B, T, C] partial
    o = allreduce(o, "sum")  # g: row-parallel output
    o += p[n + "attn.c_proj.bias"]
    x2 = x + o  # residual
    h2, c_ln2 = L.layernorm_forward(x2, p[n + "ln_2.weight"], p[n + "ln_2.bias"])
    f, c_fc = L.linear_forward(h2, p[n + "mlp.c_fc.weight"], p[n + "mlp.c_fc.bias"])  # [B,T,Fl]
    g, c_gelu = L.gelu_forward(f)
    m, c_mp = L.linear_forward(g, p[n + "mlp.c_proj.weight"], None)  # [B, T, C] partial
    m = allreduce(m, "sum")  # g
    m += p[n + "mlp.c_proj.bias"]
    x2 += m  # residual; x2 is not cached, so in place is safe
    return x2, BlockCache(c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_mp)


def block_backward(
    dout: np.ndarray, cache: BlockCache, grads: Params, layer: int,
    allreduce: L.AllReduce = L.no_allreduce,
) -> np.ndarray:
    """Backward of :func:`block_forward`: adds the parameter gradients into ``grads`` and
    returns dx [B, T, C]. ``dout`` is not modified."""
    n = layer_name(layer, "")
    grads[n + "mlp.c_proj.bias"] += dout.sum(axis=(0, 1))
    dg, dw, _ = L.linear_backward(dout, cache.mlp_proj)
    grads[n + "mlp.c_proj.weight"] += dw
    (df,) = L.gelu_backward(dg, cache.gelu)
    dh2, dw, db = L.linear_backward(df, cache.c_fc)
    grads[n + "mlp.c_fc.weight"] += dw
    grads[n + "mlp.c_fc.bias"] += db
    dh2 = allreduce(dh2, "sum")  # f: column-parallel input
    dx2, dw, db = L.layernorm_backward(dh2, cache.ln_2)
    grads[n + "ln_2.weight"] += dw
    grads[n + "ln_2.bias"] += db
    dx2 += dout  # [B, T, C] gradient of the first residual sum
    grads[n + "attn.c_proj.bias"] += dx2.sum(axis=(0, 1))
    da, dw, _ = L.linear_backward(dx2, cache.c_proj)
    grads[n + "attn.c_proj.weight"] += dw
    (dqkv,) = L.attention_backward(da, cache.attn)
    dh, dw, db = L.linear_backward(dqkv, cache.c_attn)
    grads[n + "attn.c_attn.weight"] += dw
    grads[n + "attn.c_attn.bias"] += db
    dh = allreduce(dh, "sum")  # f
    dx, dw, db = L.layernorm_backward(dh, cache.ln_1)
    grads[n + "ln_1.weight"] += dw
    grads[n + "ln_1.bias"] += db
    dx += dx2
    return dx


# --------------------------------------------------------------------------- embedding, head


def embed_forward(
    p: Params, tokens: np.ndarray, vocab_start: int = 0, allreduce: L.AllReduce = L.no_allreduce
) -> tuple[np.ndarray, L.EmbeddingCache]:
    """Token (vocabulary-parallel, summed over tp) plus position embedding. tokens [B, T]."""
    x, cache = L.embedding_forward(tokens, p[WTE], vocab_start)  # [B, T, C] partial
    x = allreduce(x, "sum")
    x, _ = L.position_forward(x, p[WPE])
    return x, cache


def embed_backward(dx: np.ndarray, cache: L.EmbeddingCache, grads: Params) -> None:
    """Adds dwte (local rows) and dwpe into ``grads``."""
    _, dwpe = L.position_backward(dx, dx.shape[1])
    grads[WPE][: dx.shape[1]] += dwpe
    _, dwte = L.embedding_backward(dx, cache)
    grads[WTE] += dwte


class HeadCache(NamedTuple):
    ln_f: L.LayerNormCache
    h2: np.ndarray  # [N, C] ln_f output
    loss: L.CrossEntropyCache
    head: str  # name of the (tied) output embedding


def head_forward(
    p: Params, x: np.ndarray, targets: np.ndarray, vocab_start: int = 0,
    allreduce: L.AllReduce = L.no_allreduce, head: str = WTE,
) -> tuple[float, HeadCache]:
    """Final layer norm, tied LM head (logits = h @ wte.T) and mean cross-entropy.

    x [B, T, C], targets [B, T]. ``head`` names the [Vl, C] output embedding: ``wte``
    itself or the last stage's copy ``lm_head.weight``.
    """
    h, c_ln = L.layernorm_forward(x, p[LN_F[0]], p[LN_F[1]])
    h2 = h.reshape(-1, h.shape[-1])  # [N, C]
    logits = (h2 @ p[head].T).reshape(*x.shape[:2], -1)  # [B, T, Vl]
    loss, c_ce = L.cross_entropy_forward(logits, targets, vocab_start, allreduce,
                                         overwrite=True)
    return loss, HeadCache(c_ln, h2, c_ce, head)


def head_backward(
    dloss: float, cache: HeadCache, grads: Params, p: Params,
    allreduce: L.AllReduce = L.no_allreduce,
) -> np.ndarray:
    """Backward of :func:`head_forward`; returns dx [B, T, C]."""
    (dlogits,) = L.cross_entropy_backward(dloss, cache.loss)  # [B, T, Vl]
    d2 = dlogits.reshape(-1, dlogits.shape[-1])  # [N, Vl]
    grads[cache.head] += d2.T @ cache.h2  # [Vl, C]
    dh = (d2 @ p[cache.head]).reshape(*dlogits.shape[:2], -1)  # [B, T, C] partial
    dh = allreduce(dh, "sum")  # f: the head is column-parallel over the vocabulary
    dx, dw, db = L.layernorm_backward(dh, cache.ln_f)
    grads[LN_F[0]] += dw
    grads[LN_F[1]] += db
    return dx


# --------------------------------------------------------------------------- whole model


def _check_tokens(model: ModelSpec, tokens: np.ndarray) -> None:
    if tokens.ndim != 2 or tokens.shape[1] > model.seq_len:
        raise ValueError(f"tokens must be [B, T] with T <= {model.seq_len}, got {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= model.vocab):
        raise ValueError(f"token ids must lie in [0, {model.vocab})")


def forward_logits(params: Params, model_spec: ModelSpec, tokens: np.ndarray) -> np.ndarray:
    """Logits [B, T, V] of the full model on one rank; params in Hugging Face names.

    Pure numpy, no MPI (params as :func:`fugaku_sim.tensors.consolidated.read_consolidated`
    gives them). Computes in the params' dtype.

    Raises:
        ValueError: tokens not [B, T] with T <= seq_len, or ids outside the vocabulary.
    """
    _check_tokens(model_spec, tokens)
    tokens = np.asarray(tokens, dtype=np.int64)
    x, _ = embed_forward(params, tokens)
    for layer in range(model_spec.layers):
        x, _ = block_forward(params, layer, x, model_spec.heads)
    h, _ = L.layernorm_forward(x, params[LN_F[0]], params[LN_F[1]])
    return h @ params[tensor_table(model_spec).source(LM_HEAD)].T  # [B, T, V]


def loss_and_grads(
    params: Params, model_spec: ModelSpec, tokens: np.ndarray, targets: np.ndarray
) -> tuple[float, Params]:
    """Mean cross-entropy and the gradient of every parameter, single rank (tests, reference).

    tokens, targets [B, T]. A tied embedding gets both its gradients.
    """
    _check_tokens(model_spec, tokens)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    x, c_emb = embed_forward(params, tokens)
    caches = []
    for layer in range(model_spec.layers):
        x, c = block_forward(params, layer, x, model_spec.heads)
        caches.append(c)
    loss, c_head = head_forward(params, x, targets, head=tensor_table(model_spec).source(LM_HEAD))
    dx = head_backward(1.0, c_head, grads, params)
    for layer in reversed(range(model_spec.layers)):
        dx = block_backward(dx, caches[layer], grads, layer)
    embed_backward(dx, c_emb, grads)
    return loss, grads
