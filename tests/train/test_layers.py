"""Finite-difference gradient checks (float64) of every layer's backward."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fugaku_sim.train import layers as L

from .helpers import run_ranks

RTOL = 1e-6  # relative error of analytic vs central-difference gradients in float64


def numeric_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_close(analytic: np.ndarray, numeric: np.ndarray, rtol: float = RTOL) -> None:
    scale = max(np.abs(numeric).max(), 1e-8)
    err = np.abs(analytic - numeric).max() / scale
    assert err < rtol, f"relative error {err:.2e}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_layernorm(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 8))
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    proj = rng.standard_normal((2, 3, 8))  # loss = sum(out * proj)

    def f() -> float:
        return float((L.layernorm_forward(x, w, b)[0] * proj).sum())

    _, cache = L.layernorm_forward(x, w, b)
    dx, dw, db = L.layernorm_backward(proj, cache)
    for analytic, arr in ((dx, x), (dw, w), (db, b)):
        assert_close(analytic, numeric_grad(f, arr))


def test_layernorm_matches_definition(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 8))
    out, _ = L.layernorm_forward(x, np.ones(8), np.zeros(8))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng: np.random.Generator, bias: bool) -> None:
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((4, 5))
    b = rng.standard_normal(5) if bias else None
    proj = rng.standard_normal((2, 3, 5))

    def f() -> float:
        return float((L.linear_forward(x, w, b)[0] * proj).sum())

    _, cache = L.linear_forward(x, w, b)
    dx, dw, db = L.linear_backward(proj, cache)
    assert_close(dx, numeric_grad(f, x))
    assert_close(dw, numeric_grad(f, w))
    if b is not None:
        assert db is not None
        assert_close(db, numeric_grad(f, b))
    else:
        assert db is None


def test_gelu(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 7)) * 2
    proj = rng.standard_normal((3, 7))

    def f() -> float:
        return float((L.gelu_forward(x)[0] * proj).sum())

    _, cache = L.gelu_forward(x)
    (dx,) = L.gelu_backward(proj, cache)
    assert_close(dx, numeric_grad(f, x))
    # the tanh approximation of Hugging Face's gelu_new at a few known points
    out, _ = L.gelu_forward(np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(out, [0.0, 0.8411919906082768, -0.15880800939172324], rtol=1e-12)


def test_attention(rng: np.random.Generator) -> None:
    heads, d, t = 2, 3, 5
    qkv = rng.standard_normal((2, t, 3 * heads * d))
    proj = rng.standard_normal((2, t, heads * d))

    def f() -> float:
        return float((L.attention_forward(qkv, heads)[0] * proj).sum())

    _, cache = L.attention_forward(qkv, heads)
    (dqkv,) = L.attention_backward(proj, cache)
    assert_close(dqkv, numeric_grad(f, qkv))


def test_attention_core_recomputes_what_it_did_not_keep(rng: np.random.Generator) -> None:
    """Selective recomputation: without the probabilities in the cache the core's backward
    rebuilds them, and the output and every gradient are the same to the bit."""
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    dy = rng.standard_normal((2, 3, 5, 4))
    y, kept = L.attention_core_forward(q, k, v)
    y2, dropped = L.attention_core_forward(q, k, v, keep_probs=False)
    assert dropped.att is None and kept.att is not None
    np.testing.assert_array_equal(y, y2)
    for a, b in zip(L.attention_core_backward(dy, kept), L.attention_core_backward(dy, dropped)):
        np.testing.assert_array_equal(a, b)
    qkv = rng.standard_normal((2, 5, 3 * 2 * 3))
    proj = rng.standard_normal((2, 5, 2 * 3))
    _, full = L.attention_forward(qkv, 2)
    _, selective = L.attention_forward(qkv, 2, keep_probs=False)
    np.testing.assert_array_equal(L.attention_backward(proj, full)[0],
                                  L.attention_backward(proj, selective)[0])


def test_attention_is_causal(rng: np.random.Generator) -> None:
    qkv = rng.standard_normal((1, 6, 12))
    y, _ = L.attention_forward(qkv, 2)
    qkv2 = qkv.copy()
    qkv2[:, 4:] = rng.standard_normal((1, 2, 12))  # change the future of position 3
    y2, _ = L.attention_forward(qkv2, 2)
    np.testing.assert_array_equal(y[:, :4], y2[:, :4])
    assert not np.allclose(y[:, 4:], y2[:, 4:])


@pytest.mark.parametrize("vocab_start", [0, 4])
def test_embedding(rng: np.random.Generator, vocab_start: int) -> None:
    tokens = rng.integers(0, 12, size=(2, 5))
    tokens[0, :3] = 5  # repeated ids accumulate
    wte = rng.standard_normal((4, 3))  # rows vocab_start .. vocab_start + 4
    proj = rng.standard_normal((2, 5, 3))

    def f() -> float:
        return float((L.embedding_forward(tokens, wte, vocab_start)[0] * proj).sum())

    out, cache = L.embedding_forward(tokens, wte, vocab_start)
    outside = (tokens < vocab_start) | (tokens >= vocab_start + 4)
    assert (out[outside] == 0).all()
    _, dwte = L.embedding_backward(proj, cache)
    assert_close(dwte, numeric_grad(f, wte))


def test_position(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4))
    wpe = rng.standard_normal((5, 4))
    proj = rng.standard_normal((2, 3, 4))

    def f() -> float:
        return float((L.position_forward(x.copy(), wpe)[0] * proj).sum())

    _, cache = L.position_forward(x.copy(), wpe)
    dx, dwpe = L.position_backward(proj, cache)
    assert_close(dwpe, numeric_grad(f, wpe)[:3])
    assert_close(dx, numeric_grad(f, x))


def test_cross_entropy(rng: np.random.Generator) -> None:
    logits = rng.standard_normal((2, 3, 7)) * 3
    targets = rng.integers(0, 7, size=(2, 3))

    def f() -> float:
        return L.cross_entropy_forward(logits, targets)[0]

    loss, cache = L.cross_entropy_forward(logits, targets)
    z = logits.reshape(-1, 7)
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(6), targets.reshape(-1)])
    assert loss == pytest.approx(ref, rel=1e-12)
    (dlogits,) = L.cross_entropy_backward(1.0, cache)
    assert_close(dlogits, numeric_grad(f, logits))


def test_cross_entropy_vocab_parallel_equals_full(rng: np.random.Generator) -> None:
    """Two vocabulary shards whose reductions meet in threads give the full loss and grads."""
    logits = rng.standard_normal((2, 3, 8))
    targets = rng.integers(0, 8, size=(2, 3))
    full, cache = L.cross_entropy_forward(logits, targets)
    (dfull,) = L.cross_entropy_backward(0.5, cache)

    def shard(i: int, allreduce: L.AllReduce) -> tuple[float, np.ndarray]:
        loss, c = L.cross_entropy_forward(logits[..., 4 * i:4 * i + 4], targets, 4 * i, allreduce)
        return loss, L.cross_entropy_backward(0.5, c)[0]

    results = run_ranks(2, shard)
    for loss, _ in results:
        assert loss == pytest.approx(full, rel=1e-12)
    grads = np.concatenate([g for _, g in results], axis=-1)
    np.testing.assert_allclose(grads, dfull, rtol=1e-12, atol=1e-15)
