"""Finite-difference gradient checks (float64) of the Llama family's layers, and their
definitions: RMSNorm, nn.Linear weights, SwiGLU, rotary positions, grouped-query attention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.train import layers as L
from fugaku_sim.train import llama_layers as LL

from .test_layers import assert_close, check_linear, numeric_grad


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_rmsnorm(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 8))
    w = rng.standard_normal(8)
    proj = rng.standard_normal((2, 3, 8))  # loss = sum(out * proj)

    def f() -> float:
        return float((LL.rmsnorm_forward(x, w, 1e-6)[0] * proj).sum())

    _, cache = LL.rmsnorm_forward(x, w, 1e-6)
    dx, dw = LL.rmsnorm_backward(proj, cache)
    assert_close(dx, numeric_grad(f, x))
    assert_close(dw, numeric_grad(f, w))


def test_rmsnorm_matches_definition(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 8))
    w = rng.standard_normal(8)
    out, _ = LL.rmsnorm_forward(x, w, 1e-5)
    ref = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # any number of leading axes (a sequence-parallel shard is [B, T/tp, C])
    np.testing.assert_allclose(LL.rmsnorm_forward(x[None], w, 1e-5)[0][0], out, rtol=1e-15)


@pytest.mark.parametrize("bias", [True, False])
def test_dense(rng: np.random.Generator, bias: bool) -> None:
    check_linear(rng, bias, LL.dense_forward, LL.dense_backward, (5, 4))  # [out, in]
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    np.testing.assert_allclose(LL.dense_forward(x, w, b)[0], x @ w.T + b, rtol=1e-12)


def test_swiglu(rng: np.random.Generator) -> None:
    gate = rng.standard_normal((3, 7)) * 3
    up = rng.standard_normal((3, 7))
    proj = rng.standard_normal((3, 7))

    def f() -> float:
        return float((LL.swiglu_forward(gate, up)[0] * proj).sum())

    out, cache = LL.swiglu_forward(gate, up)
    np.testing.assert_allclose(out, gate / (1 + np.exp(-gate)) * up, rtol=1e-12)
    dgate, dup = LL.swiglu_backward(proj, cache)
    assert_close(dgate, numeric_grad(f, gate))
    assert_close(dup, numeric_grad(f, up))
    # no overflow far out on either side: silu(-100) = 0, silu(100) = 100
    with np.errstate(all="raise"):
        big, _ = LL.swiglu_forward(np.array([-100.0, 100.0], np.float32), np.ones(2, np.float32))
    np.testing.assert_allclose(big, [0.0, 100.0], atol=1e-30)


def test_rotary(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 5, 3 * 4))  # 3 heads of 4
    proj = rng.standard_normal((2, 5, 12))

    def f() -> float:
        return float((LL.rotary_forward(x, 3, 100.0, offset=2)[0] * proj).sum())

    _, cache = LL.rotary_forward(x, 3, 100.0, offset=2)
    (dx,) = LL.rotary_backward(proj, cache)
    assert_close(dx, numeric_grad(f, x))


def test_rotary_matches_definition(rng: np.random.Generator) -> None:
    """Position p turns the pair (x_i, x_{i + D/2}) by the angle p theta^(-2i/D)
    (Hugging Face's half-split layout), and keeps the norm of each head."""
    d, t, theta = 6, 7, 50.0
    x = rng.standard_normal((1, t, d))
    out, _ = LL.rotary_forward(x, 1, theta)
    for p in range(t):
        for i in range(d // 2):
            a = p * theta ** (-2 * i / d)
            c, s = math.cos(a), math.sin(a)
            x1, x2 = x[0, p, i], x[0, p, i + d // 2]
            np.testing.assert_allclose(out[0, p, [i, i + d // 2]], [x1 * c - x2 * s, x1 * s + x2 * c],
                                       rtol=1e-6, atol=1e-6)  # the table is float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-6)


def test_rotary_scores_depend_on_relative_position(rng: np.random.Generator) -> None:
    """q_m . k_n after rotation depends on m - n only (Su et al. 2021, section 3.2)."""
    d = 8
    q, k = rng.standard_normal(d), rng.standard_normal(d)
    seq = np.zeros((1, 12, d))

    def score(m: int, n: int) -> float:
        qs, ks = seq.copy(), seq.copy()
        qs[0, m], ks[0, n] = q, k
        return float(LL.rotary_forward(qs, 1, 10000.0)[0][0, m]
                     @ LL.rotary_forward(ks, 1, 10000.0)[0][0, n])

    assert score(5, 2) == pytest.approx(score(9, 6), rel=1e-5)
    assert score(3, 3) == pytest.approx(float(q @ k), rel=1e-5)


def test_rotary_offset_continues_the_positions(rng: np.random.Generator) -> None:
    """The positions after a KV cache of ``offset`` are those of the full sequence."""
    x = rng.standard_normal((2, 9, 8)).astype(np.float32)
    full, _ = LL.rotary_forward(x, 2, 10000.0)
    part, _ = LL.rotary_forward(x[:, 6:], 2, 10000.0, offset=6)
    np.testing.assert_array_equal(part, full[:, 6:])
    assert part.dtype == np.float32


def test_rotary_table_is_hugging_faces() -> None:
    """inv_freq and the angles as LlamaRotaryEmbedding computes them (float32)."""
    cos, sin = LL.rotary_table(16, 8, 10000.0)
    assert cos.dtype == np.float32 and cos.shape == (16, 8)
    inv = 1.0 / 10000.0 ** (np.arange(0, 8, 2) / 8)
    np.testing.assert_allclose(cos[:, :4], np.cos(np.arange(16)[:, None] * inv), atol=1e-6)
    np.testing.assert_array_equal(cos[:, :4], cos[:, 4:])  # cat(freqs, freqs)
    np.testing.assert_allclose(sin[3, :4], np.sin(3 * inv), atol=1e-6)


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 2), (4, 1), (2, 2)])
def test_grouped_attention(rng: np.random.Generator, heads: int, kv_heads: int) -> None:
    d, t = 3, 5
    q = rng.standard_normal((2, t, heads * d))
    k = rng.standard_normal((2, t, kv_heads * d))
    v = rng.standard_normal((2, t, kv_heads * d))
    proj = rng.standard_normal((2, t, heads * d))

    def f() -> float:
        return float((LL.grouped_attention_forward(q, k, v, kv_heads)[0] * proj).sum())

    _, cache = LL.grouped_attention_forward(q, k, v, kv_heads)
    dq, dk, dv = LL.grouped_attention_backward(proj, cache)
    assert_close(dq, numeric_grad(f, q))
    assert_close(dk, numeric_grad(f, k))
    assert_close(dv, numeric_grad(f, v))


def test_grouped_attention_is_attention_over_repeated_heads(rng: np.random.Generator) -> None:
    """Query head h reads key/value head h // (H / K), as Hugging Face's repeat_kv."""
    b, t, d, heads, kv = 2, 4, 3, 6, 2
    q = rng.standard_normal((b, t, heads * d))
    k = rng.standard_normal((b, t, kv * d))
    v = rng.standard_normal((b, t, kv * d))
    y, _ = LL.grouped_attention_forward(q, k, v, kv)
    rep = [np.repeat(a.reshape(b, t, kv, d), heads // kv, axis=2).reshape(b, t, -1)
           for a in (k, v)]
    ref, _ = L.attention_forward(np.concatenate([q, *rep], axis=-1), heads)
    np.testing.assert_allclose(y, ref, rtol=1e-12)


@pytest.mark.interop
@pytest.mark.parametrize(("head_dim", "theta"), [(8, 10000.0), (64, 500000.0), (128, 1e6)])
def test_rotary_table_within_an_ulp_of_transformers(head_dim: int, theta: float) -> None:
    """LlamaRotaryEmbedding's float32 cos and sin, to the float32 ulp (torch's float32 cos
    is not correctly rounded; ours is)."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = transformers.LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2,
                                      max_position_embeddings=4096, rope_theta=theta)
    cos, sin = LlamaRotaryEmbedding(config)(torch.zeros(1, dtype=torch.float32),
                                            torch.arange(4096)[None])
    ours = LL.rotary_table(4096, head_dim, theta)
    for theirs, mine in zip((cos[0].numpy(), sin[0].numpy()), ours):
        assert np.abs(theirs - mine).max() <= np.spacing(np.float32(1.0))
