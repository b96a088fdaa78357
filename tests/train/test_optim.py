"""Optimizer, learning-rate schedule, gradient buckets and timers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.spec import TrainSpec
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.grad_reduce import make_buckets
from fugaku_sim.train.lr_schedule import learning_rate
from fugaku_sim.train.optimizer import Optimizer
from fugaku_sim.train.timers import Timers


def spec(**kw: object) -> TrainSpec:
    return TrainSpec.model_validate({"global_batch": 8, **kw})


def test_learning_rate_warmup_then_cosine() -> None:
    t = spec(lr=1.0, min_lr=0.1, warmup_steps=4)
    lrs = [learning_rate(s, t, 14) for s in range(16)]
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[14] == lrs[15] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_adamw_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    t = spec(lr=1e-2, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8)
    rng = np.random.default_rng(0)
    p = rng.standard_normal(50).astype(np.float32)
    mask = (np.arange(50) < 30).astype(np.float32)  # decay on the first 30 only
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    ours, opt = p.copy(), Optimizer(t, 50)
    for i, g in enumerate(grads):
        opt.step(ours, g.copy(), mask, 1e-2, i + 1)
    a = torch.tensor(p[:30], requires_grad=True)
    b = torch.tensor(p[30:], requires_grad=True)
    ref = torch.optim.AdamW([{"params": [a], "weight_decay": 0.1},
                             {"params": [b], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for g in grads:
        a.grad, b.grad = torch.tensor(g[:30]), torch.tensor(g[30:])
        ref.step()
    got = np.concatenate([a.detach().numpy(), b.detach().numpy()])
    np.testing.assert_allclose(ours, got, rtol=1e-5, atol=1e-7)


def test_sgd_and_adam_with_l2() -> None:
    p = np.ones(3, dtype=np.float32)
    Optimizer(spec(optimizer="sgd", weight_decay=0.5), 3).step(
        p, np.ones(3, dtype=np.float32), np.array([1, 0, 1], np.float32), 0.1, 1)
    np.testing.assert_allclose(p, [0.85, 0.9, 0.85], rtol=1e-6)
    q = np.ones(2, dtype=np.float32)  # first Adam step moves by lr (sign of the gradient)
    Optimizer(spec(optimizer="adam", weight_decay=0.0), 2).step(
        q, np.array([3.0, -0.5], np.float32), np.ones(2, np.float32), 0.1, 1)
    np.testing.assert_allclose(q, [0.9, 1.1], rtol=1e-5)


def test_buckets_tile_the_buffer_in_backward_order() -> None:
    flat = FlatParams([("a", (10,)), ("w", (4, 5)), ("b", (6,)), ("c", (3,))], pad_to=4)
    assert flat.padded == 40 and flat.numel == 39
    buckets = make_buckets(flat, bucket_bytes=8 * 4, tied=frozenset())
    assert [sorted(b.names) for b in buckets] == [["b", "c"], ["w"], ["a"]]
    spans = sorted((b.start, b.end) for b in buckets)
    assert spans[0][0] == 0 and spans[-1][1] == 40
    assert all(x[1] == y[0] for x, y in zip(spans, spans[1:]))
    tied = make_buckets(flat, bucket_bytes=1e9, tied=frozenset({"a"}))
    assert [(sorted(b.names), b.deferred) for b in tied] == [(["b", "c", "w"], False),
                                                          (["a"], True)]


def test_flat_views_share_memory() -> None:
    flat = FlatParams([("x", (2, 3)), ("y", (4,))])
    flat.params["y"][:] = 7
    flat.grads["x"][1, 2] = 5
    assert flat.data[6:].tolist() == [7, 7, 7, 7] and flat.grad[5] == 5
    assert flat.mask({"y"}).tolist() == [0] * 6 + [1] * 4


def test_nested_timer_regions_are_not_counted_twice() -> None:
    now = [0.0]
    timers = Timers(lambda: now[0])
    with timers.region("compute"):
        now[0] += 1
        with timers.region("tp_comm"):
            now[0] += 2
        with timers.region("recompute"):
            now[0] += 3
            with timers.region("tp_comm"):
                now[0] += 4
    times = timers.reset()
    assert times["compute"] == 1 and times["tp_comm"] == 6 and times["recompute"] == 3
    assert sum(times.values()) == 10
    assert timers.reset()["compute"] == 0
    with pytest.raises(KeyError), timers.region("nope"):
        pass
