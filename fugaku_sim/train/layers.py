"""GPT-2 layers as forward/backward pairs on numpy arrays (nanoGPT / llm.c style).

Shape key: B batch, T sequence, C channels (hidden), V vocabulary, H attention heads,
D head dimension (C = H D), F MLP width, N = B T tokens. Under tensor parallelism the same
functions run on a rank's shard: ``Cl`` = local attention channels (H/tp heads), ``Fl`` = F/tp,
``Vl`` = V/tp.

Conventions:

- ``<layer>_forward(inputs..., params...) -> (out, cache)``; the cache is a named tuple
  holding what the backward needs (layer norm keeps ``xhat`` and ``rstd``).
- ``<layer>_backward(dout, cache) -> (d<inputs>..., d<params>...)`` returns the gradients in
  the forward's argument order.
- Every function is dtype-generic: FP32 in training, FP64 in the finite-difference tests.
- Weights use the Hugging Face ``Conv1D`` layout (in x out), so ``y = x @ w + b``.
- Norms, activations and residual adds work on the last axis whatever the leading ones
  (a sequence-parallel region holds T/tp tokens).
- Reductions that cross tensor-parallel ranks (the vocabulary-parallel cross-entropy) take
  an ``allreduce(array, op)`` callable; the default is the identity (one rank). Where a
  tensor-parallel region begins and ends is a :class:`Region` (Megatron-LM's f and g).

The Llama family's layers (RMSNorm, SwiGLU, rotary positions, grouped-query attention,
``nn.Linear`` weights) follow the same conventions in :mod:`fugaku_sim.train.llama_layers`.

Sources: GPT-2 (Radford et al., 2019) as implemented by Hugging Face ``modeling_gpt2.py``
(``GPT2Attention``, ``GPT2MLP``, activation ``gelu_new``); backward formulas follow
karpathy/llm.c ``train_gpt2.c``; the vocabulary-parallel cross-entropy follows Megatron-LM
``megatron/core/tensor_parallel/cross_entropy.py``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

LN_EPS = 1e-5  # Hugging Face GPT2Config.layer_norm_epsilon
GELU_C = math.sqrt(2.0 / math.pi)  # gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

AllReduce = Callable[[np.ndarray, str], np.ndarray]


def no_allreduce(x: np.ndarray, op: str) -> np.ndarray:
    """The reduction over one rank: the identity."""
    return x


Collective = Callable[[np.ndarray], np.ndarray]


def identity(x: np.ndarray) -> np.ndarray:
    """No communication."""
    return x


class Region(NamedTuple):
    """Where a tensor-parallel region begins and ends: Megatron-LM's conjugate operators f
    and g (Shoeybi et al. 2019, section 3, figure 3), each with its forward and backward.

    A block runs ``norm -> enter -> column-parallel ... row-parallel -> leave -> + residual``
    twice; the embedding ``leave``-s (its vocabulary shards are summed) and the head
    ``enter``-s. In Megatron-LM's tensor parallelism ``enter`` (f) is the identity and its
    backward all-reduces the input gradient; ``leave`` (g) all-reduces the partial outputs
    and its backward is the identity (:func:`megatron_region`). Sequence parallelism
    (Korthikanti et al. 2022, section 4.2.2) swaps them for all-gather / reduce-scatter pairs
    along T and shards what lies outside (norms, residuals) over the tensor ranks
    (:func:`sequence_region`); ``sequence_rank`` is then this rank's place along T: its
    T' = T / tp tokens outside the region are positions [rank T', (rank + 1) T').
    ``allreduce`` serves the reductions inside a region that are neither (the
    vocabulary-parallel cross-entropy's).

    A column-parallel layer keeps the input it had *before* ``enter`` and calls ``enter``
    again in its backward: the identity without sequence parallelism, and under it the
    all-gather Megatron-LM repeats in the backward rather than keep the gathered input
    (Korthikanti et al. 2022, section 4.2.2: every activation of a layer is then T / tp).
    """

    enter: Collective  # f forward: [.., T', C] -> [.., T, C]
    enter_backward: Collective  # f backward: [.., T, C] -> [.., T', C]
    leave: Collective  # g forward: partial [.., T, C] -> [.., T', C]
    leave_backward: Collective  # g backward: [.., T', C] -> [.., T, C]
    allreduce: AllReduce
    sequence_rank: int = 0


def megatron_region(allreduce: AllReduce = no_allreduce) -> Region:
    """The tensor-parallel region of Megatron-LM (no sequence parallelism) over
    ``allreduce``: T' = T, sums at g's forward and f's backward."""

    def reduce(x: np.ndarray) -> np.ndarray:
        return allreduce(x, "sum")

    return Region(identity, reduce, reduce, identity, allreduce)


def sequence_region(gather: Collective, reduce_scatter: Collective, allreduce: AllReduce,
                    sequence_rank: int) -> Region:
    """The sequence-parallel region (Korthikanti et al. 2022, section 4.2.2, figure 5): f is
    ``gather`` (all-gather along T) with ``reduce_scatter`` (reduce-scatter along T) as its
    backward, g the other way round; each is the other's adjoint, so the pair differentiates
    correctly. ``sequence_rank``: this rank's shard of T (see :class:`Region`)."""
    return Region(gather, reduce_scatter, reduce_scatter, gather, allreduce, sequence_rank)


SINGLE_RANK = megatron_region()  # one tensor rank: every operator the identity



# --------------------------------------------------------------------------- layer norm


class LayerNormCache(NamedTuple):
    xhat: np.ndarray  # [..., C] normalised input
    rstd: np.ndarray  # [..., 1] 1 / sqrt(var + eps)
    weight: np.ndarray  # [C]


def layernorm_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = LN_EPS
) -> tuple[np.ndarray, LayerNormCache]:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis. x [..., C]."""
    mean = x.mean(axis=-1, keepdims=True)  # [..., 1]
    xc = x - mean
    var = np.einsum("...c,...c->...", xc, xc)[..., None] / x.shape[-1]  # [..., 1], biased
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd  # [..., C]
    out = xhat * weight + bias
    return out, LayerNormCache(xhat, rstd, weight)


def layernorm_backward(
    dout: np.ndarray, cache: LayerNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dweight, dbias) of :func:`layernorm_forward`."""
    xhat, rstd, weight = cache
    c = dout.shape[-1]
    d2 = dout.reshape(-1, c)  # [N, C]
    dweight = np.einsum("nc,nc->c", d2, xhat.reshape(-1, c))
    dbias = d2.sum(axis=0)
    dxhat = dout * weight  # [..., C]
    mean_d = dxhat.mean(axis=-1, keepdims=True)
    mean_dx = np.einsum("...c,...c->...", dxhat, xhat)[..., None] / c
    dx = (dxhat - mean_d - xhat * mean_dx) * rstd
    return dx, dweight, dbias


# --------------------------------------------------------------------------- linear


class LinearCache(NamedTuple):
    x: np.ndarray  # [..., in]
    weight: np.ndarray  # [in, out]
    has_bias: bool


def linear_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, LinearCache]:
    """y = x @ weight (+ bias). x [..., in], weight [in, out] -> y [..., out].

    Computed as one 2-D GEMM over the flattened leading axes.
    """
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1]) @ weight  # [N, out]
    if bias is not None:
        y += bias
    return y.reshape(*lead, weight.shape[1]), LinearCache(x, weight, bias is not None)


def linear_backward(
    dout: np.ndarray, cache: LinearCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dweight, dbias or None) of :func:`linear_forward`."""
    x, weight, has_bias = cache
    d2 = dout.reshape(-1, dout.shape[-1])  # [N, out]
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    dx = (d2 @ weight.T).reshape(x.shape)
    dweight = x2.T @ d2  # [in, out]
    dbias = d2.sum(axis=0) if has_bias else None
    return dx, dweight, dbias


def reentered(caches: list[LinearCache], region: Region) -> list[LinearCache]:
    """The caches of column-parallel layers sharing one input kept as it was before
    ``region.enter``, with that input entered again for their backward (gathered once under
    sequence parallelism; see :class:`Region`)."""
    x = region.enter(caches[0].x)
    return [c._replace(x=x) for c in caches]


# --------------------------------------------------------------------------- GELU


class GeluCache(NamedTuple):
    x: np.ndarray  # the input only: the backward recomputes the tanh


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    """tanh(sqrt(2/pi) (x + 0.044715 x^3)), a new array."""
    inner = x * x
    inner *= 0.044715
    inner += 1.0
    inner *= x
    inner *= GELU_C  # sqrt(2/pi) (x + 0.044715 x^3)
    return np.tanh(inner, out=inner)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, GeluCache]:
    """GELU, tanh approximation (Hendrycks & Gimpel 2016; Hugging Face ``gelu_new``).

    Only the input is kept: the backward recomputes the tanh from it, as Megatron-LM's
    fused ``bias_gelu_back`` does (``megatron/core/fusions/fused_bias_gelu.py``), so the
    layer keeps what Korthikanti et al. (2022, section 4.1) count for it: its input.
    """
    out = _gelu_tanh(x)
    out += 1.0
    out *= x
    out *= 0.5
    return out, GeluCache(x)


def gelu_backward(dout: np.ndarray, cache: GeluCache) -> tuple[np.ndarray]:
    """Gradient (dx,) of :func:`gelu_forward`.

    d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(...).
    """
    (x,) = cache
    t = _gelu_tanh(x)
    sech2 = t * t
    np.subtract(1.0, sech2, out=sech2)
    dinner = x * x
    dinner *= 3.0 * 0.044715
    dinner += 1.0
    dinner *= GELU_C
    dinner *= sech2
    del sech2
    dinner *= x
    dinner += t
    dinner += 1.0
    dinner *= 0.5  # local derivative
    dinner *= dout
    return (dinner,)


# --------------------------------------------------------------------------- attention


class AttentionCache(NamedTuple):
    q: np.ndarray  # [B, H, T, D]
    k: np.ndarray  # [B, H, T, D]
    v: np.ndarray  # [B, H, T, D]
    att: np.ndarray | None  # [B, H, T, T] softmax probabilities (causal); None when not kept


@functools.lru_cache(maxsize=8)
def _causal_bias(t: int, dtype: np.dtype) -> np.ndarray:
    """[T, T]: 0 on and below the diagonal, -inf above it (the future)."""
    bias = np.zeros((t, t), dtype=dtype)
    bias[np.triu_indices(t, k=1)] = -np.inf
    bias.setflags(write=False)
    return bias


def attention_probs(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Causal softmax probabilities [B, H, T, T] of q, k [B, H, T, D].

    Scores are scaled by 1/sqrt(D); masked positions get -inf before the softmax.
    """
    att = q @ k.transpose(0, 1, 3, 2)  # [B, H, T, T]
    att *= 1.0 / math.sqrt(q.shape[-1])
    att += _causal_bias(q.shape[2], att.dtype)
    att -= att.max(axis=-1, keepdims=True)
    np.exp(att, out=att)
    att /= att.sum(axis=-1, keepdims=True)
    return att


def attention_core_forward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, keep_probs: bool = True
) -> tuple[np.ndarray, AttentionCache]:
    """Scores, softmax and weighted values: y [B, H, T, D] from q, k, v [B, H, T, D].

    Without ``keep_probs`` the [B, H, T, T] probabilities are not cached: the backward
    recomputes them from q and k (selective activation recomputation, Korthikanti et al.
    2022, section 4.2: the attention core's activations grow with T^2 but cost few FLOPs).
    """
    att = attention_probs(q, k)
    return att @ v, AttentionCache(q, k, v, att if keep_probs else None)


def attention_core_backward(
    dy: np.ndarray, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv), each [B, H, T, D], of :func:`attention_core_forward`."""
    q, k, v, att = cache
    if att is None:
        att = attention_probs(q, k)
    dv = att.transpose(0, 1, 3, 2) @ dy  # [B, H, T, D]
    datt = dy @ v.transpose(0, 1, 3, 2)  # [B, H, T, T]
    # softmax backward: dS = P * (dP - sum(dP * P)); masked entries have P = 0
    datt -= np.einsum("bhij,bhij->bhi", datt, att)[..., None]
    datt *= att
    datt *= 1.0 / math.sqrt(q.shape[-1])
    return datt @ k, datt.transpose(0, 1, 3, 2) @ q, dv


def attention_forward(
    qkv: np.ndarray, heads: int, keep_probs: bool = True
) -> tuple[np.ndarray, AttentionCache]:
    """Causal multi-head self-attention of a fused QKV tensor.

    qkv [B, T, 3 Cl] holds [q | k | v], each Cl = heads x D channels, head-major within a
    block (Hugging Face ``GPT2Attention._split_heads``). Returns y [B, T, Cl].
    ``keep_probs``: see :func:`attention_core_forward`.
    """
    b, t, three_c = qkv.shape
    cl = three_c // 3
    d = cl // heads
    # [B, T, 3, H, D] -> [3, B, H, T, D]
    q, k, v = qkv.reshape(b, t, 3, heads, d).transpose(2, 0, 3, 1, 4)
    y, cache = attention_core_forward(np.ascontiguousarray(q), np.ascontiguousarray(k),
                                      np.ascontiguousarray(v), keep_probs)
    return y.transpose(0, 2, 1, 3).reshape(b, t, cl), cache  # [B, T, Cl]


def attention_backward(dout: np.ndarray, cache: AttentionCache) -> tuple[np.ndarray]:
    """Gradient (dqkv,) of :func:`attention_forward`; dout [B, T, Cl] -> dqkv [B, T, 3 Cl]."""
    b, h, t, d = cache.q.shape
    dy = dout.reshape(b, t, h, d).transpose(0, 2, 1, 3)  # [B, H, T, D]
    dq, dk, dv = attention_core_backward(dy, cache)
    dqkv = np.empty((b, t, 3, h, d), dtype=dout.dtype)
    dqkv[:, :, 0] = dq.transpose(0, 2, 1, 3)
    dqkv[:, :, 1] = dk.transpose(0, 2, 1, 3)
    dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
    return (dqkv.reshape(b, t, 3 * h * d),)


# --------------------------------------------------------------------------- embeddings


class EmbeddingCache(NamedTuple):
    tokens: np.ndarray  # [B, T] global token ids
    vocab_start: int
    vocab_rows: int  # Vl, rows of the local table


def embedding_forward(
    tokens: np.ndarray, wte: np.ndarray, vocab_start: int = 0
) -> tuple[np.ndarray, EmbeddingCache]:
    """Token embedding with a vocabulary-parallel table (Megatron ``VocabParallelEmbedding``).

    tokens [B, T] global ids; wte [Vl, C] holds rows vocab_start .. vocab_start + Vl of the
    table. Returns the local part x [B, T, C]: rows of tokens outside the shard are zero, so
    the sum over tensor-parallel ranks is the full embedding.
    """
    local = tokens - vocab_start
    inside = (local >= 0) & (local < wte.shape[0])
    x = wte[np.where(inside, local, 0)]  # [B, T, C], a copy
    x[~inside] = 0.0
    return x, EmbeddingCache(tokens, vocab_start, wte.shape[0])


def embedding_backward(
    dout: np.ndarray, cache: EmbeddingCache
) -> tuple[None, np.ndarray]:
    """Gradients (None for the tokens, dwte [Vl, C]) of :func:`embedding_forward`.

    Rows of dwte are sums over the positions holding that token, computed by sorting the
    ids and ``np.add.reduceat`` (deterministic, no scatter-add loop).
    """
    tokens, vocab_start, rows = cache
    c = dout.shape[-1]
    flat = (tokens - vocab_start).reshape(-1)  # [N]
    d2 = dout.reshape(-1, c)  # [N, C]
    dwte = np.zeros((rows, c), dtype=dout.dtype)
    keep = np.flatnonzero((flat >= 0) & (flat < rows))
    if keep.size:
        order = keep[np.argsort(flat[keep], kind="stable")]
        ids = flat[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        dwte[ids[starts]] = np.add.reduceat(d2[order], starts, axis=0)
    return None, dwte


def position_forward(x: np.ndarray, wpe: np.ndarray, start: int = 0) -> tuple[np.ndarray, int]:
    """x + wpe[start:start + T] (learned absolute positions). x [B, T, C], wpe [T', C],
    T' >= start + T; ``start`` is the position of x's first token (a sequence shard's).

    The cache is T. In place on ``x``.
    """
    t = x.shape[1]
    x += wpe[start:start + t]
    return x, t


def position_backward(dout: np.ndarray, cache: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (dx, dwpe [T, C] of the rows the forward read) of :func:`position_forward`."""
    return dout, dout.sum(axis=0)


# --------------------------------------------------------------------------- cross-entropy


class CrossEntropyCache(NamedTuple):
    exp: np.ndarray  # [N, Vl] exp(z - max z) of the local vocabulary shard (unnormalised)
    sumexp: np.ndarray  # [N] sum of exp over the whole vocabulary (all shards)
    target_local: np.ndarray  # [N] target id within the shard (clipped)
    target_inside: np.ndarray  # [N] bool, the target lies in this shard
    shape: tuple[int, ...]  # shape of the logits


def cross_entropy_forward(
    logits: np.ndarray,
    targets: np.ndarray,
    vocab_start: int = 0,
    allreduce: AllReduce = no_allreduce,
    overwrite: bool = False,
) -> tuple[float, CrossEntropyCache]:
    """Mean cross-entropy (nats per token) of logits [B, T, Vl] against targets [B, T].

    Vocabulary-parallel (Megatron ``_VocabParallelCrossEntropy``): each rank holds the
    logits of its vocabulary shard; the maximum, the sum of exponentials and the target
    logit are combined with ``allreduce`` ("max" then "sum"), two reductions of N values
    instead of gathering N x V logits. With ``overwrite`` the logits' memory is reused for
    the exponentials that the backward needs (saves a [N, Vl] array).
    """
    vl = logits.shape[-1]
    z = logits.reshape(-1, vl) if overwrite else logits.reshape(-1, vl).copy()  # [N, Vl]
    zmax = allreduce(z.max(axis=1), "max")  # [N]
    z -= zmax[:, None]
    local = targets.reshape(-1) - vocab_start
    inside = (local >= 0) & (local < vl)
    local = np.where(inside, local, 0)
    rows = np.arange(z.shape[0])
    picked = np.where(inside, z[rows, local], 0.0).astype(z.dtype)  # [N]
    np.exp(z, out=z)
    sums = np.empty((2, z.shape[0]), dtype=z.dtype)
    sums[0] = z.sum(axis=1)
    sums[1] = picked
    sums = allreduce(sums, "sum")  # one reduction for both [N] vectors
    loss = float(np.mean(np.log(sums[0]) - sums[1]))
    return loss, CrossEntropyCache(z, sums[0], local, inside, logits.shape)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache) -> tuple[np.ndarray]:
    """Gradient (dlogits [B, T, Vl],) of the mean loss scaled by ``dloss``.

    dlogits = (softmax - onehot(target)) dloss / N, with the softmax's normalisation folded
    into the same scaling; overwrites the cached exponentials.
    """
    exp, sumexp, local, inside, shape = cache
    n = exp.shape[0]
    exp *= ((dloss / n) / sumexp)[:, None]
    rows = np.flatnonzero(inside)
    exp[rows, local[rows]] -= dloss / n
    return (exp.reshape(shape),)
