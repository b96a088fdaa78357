"""The Llama family's layers as forward/backward pairs on numpy arrays, in the conventions
of :mod:`fugaku_sim.train.layers` (caches as named tuples, gradients in the forward's
argument order, dtype-generic for float64 finite differences).

Shape key: B batch, T sequence, C channels, H query heads, K key/value heads (K divides H),
D head dimension, F MLP width, N = B T tokens; under tensor parallelism a rank holds
``Hl`` = H/tp query heads, ``Kl`` key/value heads (K/tp, or one copied head when K < tp) and
``Fl`` = F/tp of the MLP.

Weights use ``nn.Linear``'s layout (out x in), so ``y = x @ w.T + b``.

Sources: Llama (Touvron et al. 2023, section 2.2) as Hugging Face ``modeling_llama.py``
computes it: ``LlamaRMSNorm``, ``LlamaMLP`` (SwiGLU), ``LlamaRotaryEmbedding`` with
``rotate_half`` / ``apply_rotary_pos_emb``, ``repeat_kv`` for grouped-query attention.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from fugaku_sim.train.layers import (
    AttentionCache,
    LinearCache,
    attention_core_backward,
    attention_core_forward,
    linear_backward,
    linear_forward,
)

# --------------------------------------------------------------------------- RMSNorm


class RMSNormCache(NamedTuple):
    xhat: np.ndarray  # [..., C] x / rms(x)
    rstd: np.ndarray  # [..., 1] 1 / sqrt(mean(x^2) + eps)
    weight: np.ndarray  # [C]


def rmsnorm_forward(
    x: np.ndarray, weight: np.ndarray, eps: float
) -> tuple[np.ndarray, RMSNormCache]:
    """y = x / sqrt(mean(x^2) + eps) * weight over the last axis (Zhang & Sennrich 2019;
    Hugging Face ``LlamaRMSNorm``: no mean subtracted, no bias). x [..., C]."""
    ms = np.einsum("...c,...c->...", x, x)[..., None] / x.shape[-1]  # [..., 1]
    rstd = 1.0 / np.sqrt(ms + eps)
    xhat = x * rstd  # [..., C]
    return xhat * weight, RMSNormCache(xhat, rstd, weight)


def rmsnorm_backward(dout: np.ndarray, cache: RMSNormCache) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (dx, dweight) of :func:`rmsnorm_forward`.

    With g = dout weight: dx = rstd (g - xhat mean(g xhat)), since d rstd / dx = -rstd^3 x / C.
    """
    xhat, rstd, weight = cache
    c = dout.shape[-1]
    dweight = np.einsum("nc,nc->c", dout.reshape(-1, c), xhat.reshape(-1, c))
    dxhat = dout * weight  # [..., C]
    mean_dx = np.einsum("...c,...c->...", dxhat, xhat)[..., None] / c
    dx = (dxhat - xhat * mean_dx) * rstd
    return dx, dweight


# --------------------------------------------------------------------------- linear


def dense_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None
) -> tuple[np.ndarray, LinearCache]:
    """y = x @ weight.T (+ bias) with ``nn.Linear``'s layout: x [..., in], weight [out, in]
    -> y [..., out]. The Conv1D layer of the transposed view (BLAS reads it transposed, no
    copy)."""
    return linear_forward(x, weight.T, bias)


def dense_backward(
    dout: np.ndarray, cache: LinearCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dweight [out, in] (a transposed view), dbias or None) of
    :func:`dense_forward`."""
    dx, dweight, dbias = linear_backward(dout, cache)
    return dx, dweight.T, dbias


# --------------------------------------------------------------------------- SwiGLU


class SwiGLUCache(NamedTuple):
    gate: np.ndarray  # [..., Fl]
    up: np.ndarray  # [..., Fl]; the backward recomputes sigmoid(gate)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """sigmoid(x) as (1 + tanh(x / 2)) / 2, which cannot overflow; a new array."""
    sig = np.tanh(x * 0.5)
    sig += 1.0
    sig *= 0.5
    return sig


def swiglu_forward(gate: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, SwiGLUCache]:
    """silu(gate) * up, silu(x) = x sigmoid(x) (Shazeer 2020; Hugging Face ``LlamaMLP`` with
    ``hidden_act: silu``). gate, up [..., Fl].

    Only the inputs are kept: the backward recomputes the sigmoid, as Megatron-LM's fused
    SwiGLU does (``megatron/core/fusions/fused_bias_swiglu.py``, which saves the input
    alone), so the layer keeps what Korthikanti et al.'s count gives it (its two inputs).
    """
    out = _sigmoid(gate)
    out *= gate
    out *= up
    return out, SwiGLUCache(gate, up)


def swiglu_backward(dout: np.ndarray, cache: SwiGLUCache) -> tuple[np.ndarray, np.ndarray]:
    """Gradients (dgate, dup) of :func:`swiglu_forward`.

    d silu / dx = sigmoid(x) (1 + x (1 - sigmoid(x))).
    """
    gate, up = cache
    sig = _sigmoid(gate)
    dup = gate * sig
    dup *= dout
    dgate = 1.0 - sig
    dgate *= gate
    dgate += 1.0
    dgate *= sig
    del sig
    dgate *= up
    dgate *= dout
    return dgate, dup


# --------------------------------------------------------------------------- grouped-query attention


class GroupedAttentionCache(NamedTuple):
    attn: AttentionCache  # of the query heads with their keys and values repeated
    kv_heads: int


def grouped_attention_forward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, kv_heads: int, keep_probs: bool = True
) -> tuple[np.ndarray, GroupedAttentionCache]:
    """Causal grouped-query attention (Ainslie et al. 2023): H query heads over K key/value
    heads, query head h reading key/value head h // (H / K) (Hugging Face ``repeat_kv``).

    q [B, T, H D], k and v [B, T, K D] -> y [B, T, H D]. The keys and values are repeated
    for each query head of their group and go through
    :func:`~fugaku_sim.train.layers.attention_core_forward` (``keep_probs`` as there);
    K = H is multi-head and K = 1 multi-query attention.
    """
    b, t, _ = q.shape
    d = k.shape[-1] // kv_heads
    heads = q.shape[-1] // d
    qh = np.ascontiguousarray(q.reshape(b, t, heads, d).transpose(0, 2, 1, 3))  # [B, H, T, D]
    kh, vh = (np.repeat(a.reshape(b, t, kv_heads, d).transpose(0, 2, 1, 3), heads // kv_heads,
                        axis=1) for a in (k, v))  # [B, H, T, D], new arrays
    y, cache = attention_core_forward(qh, kh, vh, keep_probs)
    return y.transpose(0, 2, 1, 3).reshape(b, t, heads * d), GroupedAttentionCache(cache,
                                                                                   kv_heads)


def grouped_attention_backward(
    dout: np.ndarray, cache: GroupedAttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq [B, T, H D], dk, dv [B, T, K D]) of :func:`grouped_attention_forward`:
    the gradients of a repeated key or value are summed over its group."""
    b, h, t, d = cache.attn.q.shape
    kv = cache.kv_heads
    dy = dout.reshape(b, t, h, d).transpose(0, 2, 1, 3)  # [B, H, T, D]
    dq, dk, dv = attention_core_backward(dy, cache.attn)
    dk, dv = (a.reshape(b, kv, h // kv, t, d).sum(axis=2) for a in (dk, dv))  # [B, K, T, D]

    def tokens_first(a: np.ndarray) -> np.ndarray:  # [B, heads, T, D] -> [B, T, heads D]
        return a.transpose(0, 2, 1, 3).reshape(b, t, -1)

    return tokens_first(dq), tokens_first(dk), tokens_first(dv)


# --------------------------------------------------------------------------- rotary positions


@functools.lru_cache(maxsize=16)
def rotary_table(positions: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [positions, D] (float32) of rotary position embedding (Su et al. 2021)
    with base ``theta``, in Hugging Face Llama's layout: angle p theta^(-2i/D) for
    i < D/2, the D/2 angles twice over (``torch.cat((freqs, freqs))``).

    The angles are ``LlamaRotaryEmbedding``'s, so that a released model sees the positions
    it was trained with: float32 exponents, the power in float64 rounded to float32 (what
    torch's ``float ** tensor`` returns), float32 reciprocal and product (whose rounding
    grows with the position). Their cos and sin are taken in float64 and rounded: torch's
    and numpy's float32 cos differ by an ulp here and there, and from CPU to CPU.
    """
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv_freq = np.float32(1.0) / (theta ** exponent.astype(np.float64)).astype(np.float32)
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv_freq  # [P, D/2]
    angles = np.concatenate([angles, angles], axis=-1).astype(np.float64)  # [P, D]
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    cos.setflags(write=False)
    sin.setflags(write=False)
    return cos, sin


class RotaryCache(NamedTuple):
    cos: np.ndarray  # [T, 1, D]
    sin: np.ndarray  # [T, 1, D]


def _rotate_half(x: np.ndarray) -> np.ndarray:
    """[-x2, x1] of x = [x1, x2] split in halves on the last axis (``rotate_half``)."""
    half = x.shape[-1] // 2
    out = np.empty_like(x)
    np.negative(x[..., half:], out=out[..., :half])
    out[..., half:] = x[..., :half]
    return out


def rotary_forward(
    x: np.ndarray, heads: int, theta: float, offset: int = 0
) -> tuple[np.ndarray, RotaryCache]:
    """Rotary position embedding of queries or keys: x [B, T, heads D] at positions
    offset .. offset + T - 1 (``offset``: the positions already in a KV cache).

    out = x cos + rotate_half(x) sin per head (Hugging Face ``apply_rotary_pos_emb``).
    """
    b, t, c = x.shape
    d = c // heads
    length = 1 << (offset + t - 1).bit_length()  # a power of two: few tables cached
    cos, sin = (a[offset:offset + t, None, :].astype(x.dtype, copy=False)
                for a in rotary_table(length, d, float(theta)))  # [T, 1, D]
    xh = x.reshape(b, t, heads, d)
    out = _rotate_half(xh)
    out *= sin
    out += xh * cos
    return out.reshape(b, t, c), RotaryCache(cos, sin)


def rotary_backward(dout: np.ndarray, cache: RotaryCache) -> tuple[np.ndarray]:
    """Gradient (dx,) of :func:`rotary_forward`: rotate_half is R x = [-x2, x1], whose
    transpose is -R, so dx = dout cos - rotate_half(dout sin)."""
    cos, sin = cache
    b, t, c = dout.shape
    d = cos.shape[-1]
    dh = dout.reshape(b, t, c // d, d)
    dx = dh * cos
    dx -= _rotate_half(dh * sin)
    return (dx.reshape(b, t, c),)
