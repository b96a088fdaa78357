"""The model from the layers: embedding, transformer blocks and the LM head, for the GPT-2
and the Llama family.

Shape key: B batch, T sequence, C channels, V vocabulary, Cl/Fl/Vl the local shares of the
attention channels, MLP width and vocabulary under tensor parallelism (tp).

Parameters live in a dict keyed by the Hugging Face names of the tensor table
(:mod:`fugaku_sim.tensors`; a rank holds its tensor-parallel part of each). Gradients
accumulate into a dict of the same keys. Code that needs a particular tensor asks for its
role (:mod:`fugaku_sim.train.params`), so one function serves both families' names.

Tensor parallelism follows Megatron-LM (Shoeybi et al. 2019, figure 3): a block is
``norm -> enter -> column-parallel layers -> row-parallel layer -> leave -> + residual``,
twice, where ``enter`` and ``leave`` are the operators f and g of a :class:`~fugaku_sim.train.
layers.Region` (all-reduce of the input gradient; all-reduce of the partial outputs). The
norms and residual adds between regions touch the last axis only, so under sequence
parallelism (the same operators as all-gather / reduce-scatter pairs, T' = T/tp tokens
outside; Korthikanti et al. 2022, section 4.2.2) they run on this rank's T' tokens
unchanged. What changes: a column-parallel layer keeps its input as it was before ``enter``
(T' tokens) and gathers it again in the backward; the embedding's sum over the vocabulary
shards is a reduce-scatter, after which each rank adds the positions of its own tokens; the
head gathers. The gradients of the tensors used on T' tokens (norms, row-parallel biases,
positions) are then partial sums over this rank's tokens: the trainer sums them over the
tensor group (:mod:`fugaku_sim.train.sequence`). With tp = 1 every operator is the identity
and the functions are the single-rank model. The GPT-2 block is here, the Llama block in
:mod:`fugaku_sim.train.llama_block`.

``forward_logits`` is the pure single-rank forward the tests compare with transformers.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LM_HEAD, tensor_table
from fugaku_sim.train import layers as L
from fugaku_sim.train import llama_block as LB
from fugaku_sim.train import llama_layers as LL
from fugaku_sim.train.params import (
    Names,
    Params,
    RankShare,
    add_grad,
    block_names,
    optional,
    rank_share,
)

INIT_STD = 0.02  # Hugging Face GPT2Config's and LlamaConfig's initializer_range


def init_std(name: str, model: ModelSpec) -> float | None:
    """Standard deviation of the normal initialisation of ``name``; None for constants.

    GPT-2 (Radford et al. 2019, section 2.3) scales the weights of the residual projections
    by 1/sqrt(N), N = 2 x layers residual layers; Hugging Face ``GPT2PreTrainedModel.
    _init_weights`` applies it to every ``c_proj.weight`` (std 0.02 / sqrt(2 layers)).
    Llama (``LlamaPreTrainedModel._init_weights``) draws every matrix, the untied head
    included, with std 0.02. Biases start at 0 and norm weights at 1 (the table's ``init``
    of each tensor).
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


# --------------------------------------------------------------------------- norms


def norm_forward(model: ModelSpec, x: np.ndarray, weight: np.ndarray,
                 bias: np.ndarray | None) -> tuple[np.ndarray, Any]:
    """The family's norm over the last axis: layer norm or RMSNorm, eps ``model.norm_eps``."""
    if model.norm == "rmsnorm":
        return LL.rmsnorm_forward(x, weight, model.norm_eps)
    assert bias is not None
    return L.layernorm_forward(x, weight, bias, model.norm_eps)


def norm_backward(dout: np.ndarray, cache: Any
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dx, dweight, dbias or None) of :func:`norm_forward`."""
    if isinstance(cache, LL.RMSNormCache):
        return (*LL.rmsnorm_backward(dout, cache), None)
    return L.layernorm_backward(dout, cache)


# --------------------------------------------------------------------------- GPT-2 block


class BlockCache(NamedTuple):
    names: Names
    ln_1: L.LayerNormCache
    c_attn: L.LinearCache
    attn: L.AttentionCache | LL.GroupedAttentionCache
    c_proj: L.LinearCache
    ln_2: L.LayerNormCache
    c_fc: L.LinearCache
    gelu: L.GeluCache
    mlp_proj: L.LinearCache


def _fused_attention(qkv: np.ndarray, share: RankShare, keep_probs: bool
                     ) -> tuple[np.ndarray, L.AttentionCache | LL.GroupedAttentionCache]:
    """Attention of the fused [q | k | v] [B, T, (Hl + 2 Kl) D] of this rank's heads."""
    if share.kv_heads == share.heads:
        return L.attention_forward(qkv, share.heads, keep_probs)
    d = qkv.shape[-1] // (share.heads + 2 * share.kv_heads)
    q, k, v = np.split(qkv, [share.heads * d, (share.heads + share.kv_heads) * d], axis=-1)
    return LL.grouped_attention_forward(q, k, v, share.kv_heads, keep_probs)


def gpt2_block_forward(
    p: Params, n: Names, model: ModelSpec, x: np.ndarray, share: RankShare,
    region: L.Region = L.SINGLE_RANK, keep_probs: bool = True,
) -> tuple[np.ndarray, BlockCache]:
    """One pre-LN GPT-2 block: x + attn(ln_1(x)), then + mlp(ln_2(.)). x [B, T, C].
    ``keep_probs`` False is selective recomputation
    (:func:`fugaku_sim.train.layers.attention_core_forward`)."""
    eps = model.norm_eps
    h, c_ln1 = L.layernorm_forward(x, p[n["attn_norm"]], p[n["attn_norm_bias"]], eps)
    qkv, c_qkv = column_forward(h, p[n["qkv"]], optional(p, n, "qkv_bias"), region)  # f
    del h
    a, c_att = _fused_attention(qkv, share, keep_probs)  # [B, T, Cl]
    del qkv
    o, c_proj = L.linear_forward(a, p[n["attn_out"]], None)  # [B, T, C] partial
    o = region.leave(o)  # g: row-parallel output
    if "attn_out_bias" in n:
        o += p[n["attn_out_bias"]]
    x2 = x + o  # residual
    del o
    h2, c_ln2 = L.layernorm_forward(x2, p[n["mlp_norm"]], p[n["mlp_norm_bias"]], eps)
    f, c_fc = column_forward(h2, p[n["mlp_in"]], optional(p, n, "mlp_in_bias"), region)  # f
    del h2
    g, c_gelu = L.gelu_forward(f)  # [B, T, Fl]
    m, c_mp = L.linear_forward(g, p[n["mlp_out"]], None)  # [B, T, C] partial
    m = region.leave(m)  # g
    if "mlp_out_bias" in n:
        m += p[n["mlp_out_bias"]]
    x2 += m  # residual; x2 is not cached, so in place is safe
    return x2, BlockCache(n, c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_mp)


def gpt2_block_backward(
    dout: np.ndarray, cache: BlockCache, grads: Params, region: L.Region = L.SINGLE_RANK,
) -> np.ndarray:
    """Backward of :func:`gpt2_block_forward`: adds the parameter gradients into ``grads``
    and returns dx [B, T, C]. ``dout`` is not modified. Each intermediate gradient is let go
    as soon as it is used, as an autograd engine frees them."""
    n = cache.names
    add_grad(grads, n, "mlp_out_bias", dout.sum(axis=(0, 1)))
    dg, dw, _ = L.linear_backward(region.leave_backward(dout), cache.mlp_proj)
    grads[n["mlp_out"]] += dw
    (df,) = L.gelu_backward(dg, cache.gelu)
    del dg
    dh2 = column_backward(df, cache.c_fc, grads, n, "mlp_in", region)  # f
    del df
    dx2, dw, db = L.layernorm_backward(dh2, cache.ln_2)
    del dh2
    grads[n["mlp_norm"]] += dw
    grads[n["mlp_norm_bias"]] += db
    dx2 += dout  # [B, T, C] gradient of the first residual sum
    add_grad(grads, n, "attn_out_bias", dx2.sum(axis=(0, 1)))
    da, dw, _ = L.linear_backward(region.leave_backward(dx2), cache.c_proj)
    grads[n["attn_out"]] += dw
    if isinstance(cache.attn, LL.GroupedAttentionCache):
        dqkv = np.concatenate(LL.grouped_attention_backward(da, cache.attn), axis=-1)
    else:
        (dqkv,) = L.attention_backward(da, cache.attn)
    del da
    dh = column_backward(dqkv, cache.c_attn, grads, n, "qkv", region)  # f
    del dqkv
    dx, dw, db = L.layernorm_backward(dh, cache.ln_1)
    grads[n["attn_norm"]] += dw
    grads[n["attn_norm_bias"]] += db
    dx += dx2
    return dx


def column_forward(h: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                   region: L.Region) -> tuple[np.ndarray, L.LinearCache]:
    """A column-parallel layer entered through ``region``'s f: ``enter(h) @ weight (+ bias)``.
    Its cache keeps ``h`` as it was before f (under sequence parallelism the T' tokens of
    this rank; see :class:`~fugaku_sim.train.layers.Region`), which :func:`column_backward`
    enters again."""
    y, cache = L.linear_forward(region.enter(h), weight, bias)
    return y, cache._replace(x=h)


def column_backward(dy: np.ndarray, cache: L.LinearCache, grads: Params, n: Names, role: str,
                    region: L.Region) -> np.ndarray:
    """Backward of :func:`column_forward` for the tensor of ``role`` (and its bias, if any):
    adds the weight and bias gradients into ``grads`` and returns the gradient of ``h``
    (f's backward of the input gradient)."""
    (full,) = L.reentered([cache], region)
    dh, dw, db = L.linear_backward(dy, full)
    del full
    grads[n[role]] += dw
    add_grad(grads, n, f"{role}_bias", db)
    return region.enter_backward(dh)


# --------------------------------------------------------------------------- either family


def block_forward(
    p: Params, model: ModelSpec, layer: int, x: np.ndarray, share: RankShare,
    region: L.Region = L.SINGLE_RANK, keep_probs: bool = True,
) -> tuple[np.ndarray, BlockCache | LB.LlamaBlockCache]:
    """Transformer block ``layer`` of ``model``'s family on this rank's share. x [B, T, C].
    ``keep_probs`` False is selective recomputation (the attention probabilities are not
    kept: :func:`fugaku_sim.train.layers.attention_core_forward`)."""
    n = block_names(model, layer)
    if model.family == "llama":
        return LB.llama_block_forward(p, n, model, x, share, region, keep_probs)
    return gpt2_block_forward(p, n, model, x, share, region, keep_probs)


def block_backward(
    dout: np.ndarray, cache: BlockCache | LB.LlamaBlockCache, grads: Params,
    region: L.Region = L.SINGLE_RANK,
) -> np.ndarray:
    """Backward of :func:`block_forward`: adds into ``grads``, returns dx [B, T, C]."""
    if isinstance(cache, LB.LlamaBlockCache):
        return LB.llama_block_backward(dout, cache, grads, region)
    return gpt2_block_backward(dout, cache, grads, region)


# --------------------------------------------------------------------------- embedding, head


def embed_forward(
    p: Params, model: ModelSpec, tokens: np.ndarray, vocab_start: int = 0,
    region: L.Region = L.SINGLE_RANK,
) -> tuple[np.ndarray, L.EmbeddingCache]:
    """Token embedding (vocabulary-parallel, summed over tp), plus the position embedding
    of a model with learned positions. tokens [B, T]."""
    n = block_names(model, None)
    x, cache = L.embedding_forward(tokens, p[n["tok_embed"]], vocab_start)  # [B, T, C] partial
    x = region.leave(x)  # [B, T', C]: all-reduced, or reduce-scattered along T
    if "pos_embed" in n:
        x, _ = L.position_forward(x, p[n["pos_embed"]], region.sequence_rank * x.shape[1])
    return x, cache


def embed_backward(dx: np.ndarray, cache: L.EmbeddingCache, grads: Params,
                   model: ModelSpec, region: L.Region = L.SINGLE_RANK) -> None:
    """Adds dwte (local rows) and, with learned positions, dwpe (the rows of this rank's
    tokens) into ``grads``. dx [B, T', C]."""
    n = block_names(model, None)
    if "pos_embed" in n:
        t = dx.shape[1]
        start = region.sequence_rank * t
        _, dwpe = L.position_backward(dx, t)
        grads[n["pos_embed"]][start:start + t] += dwpe
    _, dwte = L.embedding_backward(region.leave_backward(dx), cache)
    grads[n["tok_embed"]] += dwte


class HeadCache(NamedTuple):
    norm: Any  # the final norm's cache
    h: np.ndarray  # [B, T', C] final norm output, before f (gathered again in the backward)
    loss: L.CrossEntropyCache
    head: str  # name of the output embedding
    names: Names


def head_name(model: ModelSpec, held: set[str] | None = None) -> str:
    """The tensor the LM head multiplies by: the token embedding when tied and held
    (``held`` None: a single rank holds everything), else ``lm_head.weight`` (the tied
    copy, or the untied head)."""
    table = tensor_table(model)
    if table[LM_HEAD].tied_to is None or (held is not None and LM_HEAD in held):
        return LM_HEAD
    return table.source(LM_HEAD)


def head_forward(
    p: Params, model: ModelSpec, x: np.ndarray, targets: np.ndarray, vocab_start: int = 0,
    region: L.Region = L.SINGLE_RANK, head: str | None = None,
) -> tuple[float, HeadCache]:
    """Final norm, LM head (logits = h @ W.T, vocabulary-parallel) and mean cross-entropy.

    x [B, T, C], targets [B, T]. ``head`` names the [Vl, C] output embedding (default
    :func:`head_name` of a single rank).
    """
    n = block_names(model, None)
    head = head or head_name(model)
    h, c_norm = norm_forward(model, x, p[n["final_norm"]], optional(p, n, "final_norm_bias"))
    hg = region.enter(h)  # f: the head is column-parallel over the vocabulary; [B, T, C]
    logits = (hg.reshape(-1, hg.shape[-1]) @ p[head].T).reshape(*hg.shape[:-1], -1)  # [B,T,Vl]
    del hg
    loss, c_ce = L.cross_entropy_forward(logits, targets, vocab_start, region.allreduce,
                                         overwrite=True)
    return loss, HeadCache(c_norm, h, c_ce, head, n)


def head_backward(
    dloss: float, cache: HeadCache, grads: Params, p: Params,
    region: L.Region = L.SINGLE_RANK,
) -> np.ndarray:
    """Backward of :func:`head_forward`; returns dx [B, T, C]."""
    (dlogits,) = L.cross_entropy_backward(dloss, cache.loss)  # [B, T, Vl]
    d2 = dlogits.reshape(-1, dlogits.shape[-1])  # [N, Vl]
    hg = region.enter(cache.h)  # [B, T, C], gathered again under sequence parallelism
    grads[cache.head] += d2.T @ hg.reshape(-1, hg.shape[-1])  # [Vl, C]
    del hg
    dh = (d2 @ p[cache.head]).reshape(*dlogits.shape[:-1], -1)  # [B, T, C] partial
    dh = region.enter_backward(dh)  # f
    dx, dw, db = norm_backward(dh, cache.norm)
    grads[cache.names["final_norm"]] += dw
    add_grad(grads, cache.names, "final_norm_bias", db)
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
    share = rank_share(model_spec)
    x, _ = embed_forward(params, model_spec, tokens)
    for layer in range(model_spec.layers):
        x, _ = block_forward(params, model_spec, layer, x, share)
    n = block_names(model_spec, None)
    h, _ = norm_forward(model_spec, x, params[n["final_norm"]],
                        optional(params, n, "final_norm_bias"))
    return h @ params[head_name(model_spec)].T  # [B, T, V]


def loss_and_grads(
    params: Params, model_spec: ModelSpec, tokens: np.ndarray, targets: np.ndarray
) -> tuple[float, Params]:
    """Mean cross-entropy and the gradient of every parameter, single rank (tests, reference).

    tokens, targets [B, T]. A tied embedding gets both its gradients.
    """
    _check_tokens(model_spec, tokens)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    share = rank_share(model_spec)
    x, c_emb = embed_forward(params, model_spec, tokens)
    caches = []
    for layer in range(model_spec.layers):
        x, c = block_forward(params, model_spec, layer, x, share)
        caches.append(c)
    loss, c_head = head_forward(params, model_spec, x, targets)
    dx = head_backward(1.0, c_head, grads, params)
    for layer in reversed(range(model_spec.layers)):
        dx = block_backward(dx, caches[layer], grads)
    embed_backward(dx, c_emb, grads, model_spec)
    return loss, grads
