"""Optimizer, learning-rate schedule, gradient buckets and timers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.spec import TrainSpec
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.grad_reduce import bucket_groups, make_buckets
from fugaku_sim.train.lr_schedule import learning_rate
from fugaku_sim.train.optimizer import CHUNK, Optimizer
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
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    ours, opt = p.copy(), Optimizer(t, 50)
    for i, g in enumerate(grads):  # decay on the first 30 only
        opt.step(ours, g.copy(), [(0, 30)], 1e-2, i + 1)
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
        p, np.ones(3, dtype=np.float32), [(0, 1), (2, 3)], 0.1, 1)
    np.testing.assert_allclose(p, [0.85, 0.9, 0.85], rtol=1e-6)
    q = np.ones(2, dtype=np.float32)  # first Adam step moves by lr (sign of the gradient)
    Optimizer(spec(optimizer="adam", weight_decay=0.0), 2).step(
        q, np.array([3.0, -0.5], np.float32), [(0, 2)], 0.1, 1)
    np.testing.assert_allclose(q, [0.9, 1.1], rtol=1e-5)


def test_chunked_update_of_pieces_equals_one_update() -> None:
    """Updating a range in chunks, or as two pieces at their offsets in the states, gives
    the update of the whole range at once."""
    t = spec(lr=1e-2, weight_decay=0.1)
    rng = np.random.default_rng(1)
    n = CHUNK * 2 + 77
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    whole, split = p0.copy(), p0.copy()
    a, b = Optimizer(t, n), Optimizer(t, n)
    cut = CHUNK + 5
    for i, g in enumerate(grads):
        a.step(whole, g.copy(), [(10, n - 10)], 1e-2, i + 1)
        b.step(split[:cut], g[:cut].copy(), [(10, cut)], 1e-2, i + 1, 0)
        b.step(split[cut:], g[cut:].copy(), [(0, n - 10 - cut)], 1e-2, i + 1, cut)
    np.testing.assert_array_equal(whole, split)
    np.testing.assert_array_equal(a.exp_avg_sq, b.exp_avg_sq)


ENTRIES = [("a", (10,)), ("w", (4, 5)), ("b", (6,)), ("c", (3,))]


def sizes(entries: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, int]]:
    return [(n, math.prod(s)) for n, s in entries]


def test_buckets_tile_the_buffer_in_backward_order() -> None:
    groups = bucket_groups(sizes(ENTRIES), bucket_bytes=8 * 4, tied=frozenset())
    assert groups == [["a"], ["w"], ["b", "c"]]  # buffer order
    flat = FlatParams(ENTRIES, pad_to=4, groups=groups)
    # each bucket padded to a multiple of 4: 10 -> 12, 20, 9 -> 12
    assert flat.segments == [(0, 12), (12, 32), (32, 44)] and flat.numel == 39
    assert flat.offsets["b"] == (32, 38) and flat.padded == 44
    buckets = make_buckets(flat, tied=frozenset())
    assert [sorted(b.names) for b in buckets] == [["b", "c"], ["w"], ["a"]]
    tied = bucket_groups(sizes(ENTRIES), bucket_bytes=1e9, tied=frozenset({"a"}))
    assert tied == [["a"], ["w", "b", "c"]]
    flat = FlatParams(ENTRIES, pad_to=1, groups=tied)
    assert [(sorted(b.names), b.deferred) for b in make_buckets(flat, frozenset({"a"}))] \
        == [(["b", "c", "w"], False), (["a"], True)]
    # a chunk boundary closes a bucket: "b" begins the second chunk
    assert bucket_groups(sizes(ENTRIES), 1e9, frozenset(), frozenset({"b"})) \
        == [["a", "w"], ["b", "c"]]


def test_owned_pieces_split_every_segment_evenly() -> None:
    flat = FlatParams(ENTRIES, pad_to=4, groups=[["a"], ["w"], ["b", "c"]])
    pieces = [flat.owned(r, 4) for r in range(4)]
    assert [(p.start, p.end, p.shard_start) for p in pieces[1]] == [(3, 6, 0), (17, 22, 3),
                                                                   (35, 38, 8)]
    covered = sorted((p.start, p.end) for ps in pieces for p in ps)
    assert covered[0][0] == 0 and covered[-1][1] == 44
    assert all(x[1] == y[0] for x, y in zip(covered, covered[1:]))
    flat.data[:] = np.arange(44)
    assert flat.shard_of(flat.data, pieces[1]).tolist() == [3, 4, 5, *range(17, 22), 35, 36, 37]
    # where the tensors "a" and "c" lie in rank 1's pieces, relative to each piece
    assert [flat.ranges_of({"a", "c"}, p) for p in pieces[1]] == [[(0, 3)], [], []]
    assert flat.ranges_of({"c"}, flat.owned(2, 4)[2]) == [(0, 3)]  # c = 38..41 = the piece
    with pytest.raises(ValueError):
        FlatParams(ENTRIES, groups=[["a"], ["w"]])


def test_flat_views_share_memory() -> None:
    flat = FlatParams([("x", (2, 3)), ("y", (4,))])
    flat.params["y"][:] = 7
    flat.grads["x"][1, 2] = 5
    assert flat.data[6:].tolist() == [7, 7, 7, 7] and flat.grad[5] == 5
    sharded = FlatParams([("x", (2, 3)), ("y", (4,))], hold_data=False, hold_grad=False)
    assert sharded.data.size == 0 and sharded.params == {} and sharded.padded == 10


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
