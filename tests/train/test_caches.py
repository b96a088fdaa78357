"""Caches as trees: bytes they keep alive, weights taken out and put back, probabilities
rebuilt."""

from __future__ import annotations

import numpy as np

from fugaku_sim.train import layers as L
from fugaku_sim.train.caches import attach_views, cache_bytes, detach_views, restore_probs


def test_cache_bytes_counts_each_buffer_once_and_leaves_out_parameters() -> None:
    weights = np.zeros(100, dtype=np.float32)
    w = weights[10:30].reshape(4, 5)  # a parameter view
    x = np.ones((3, 4), dtype=np.float32)
    tree = (L.LinearCache(x, w, True), [x.reshape(-1), x[1:]], ("name", 3), None)
    assert cache_bytes(tree) == x.nbytes + weights.nbytes
    assert cache_bytes(tree, lambda o: o is weights) == x.nbytes


def test_detached_views_come_back_on_a_new_buffer() -> None:
    old = np.arange(60, dtype=np.float32)
    w = old[12:32].reshape(4, 5)
    tree = {"keep": 1}, L.LinearCache(np.ones((2, 4)), w.T, False), [old[40:44]]
    detached = detach_views(tree, old)
    assert not any(isinstance(a, np.ndarray) and np.shares_memory(a, old)
                   for a in (detached[1].weight, detached[2][0]))
    new = old + 1000  # the same unit gathered again, into another buffer
    again = attach_views(detached, new)
    np.testing.assert_array_equal(again[1].weight, new[12:32].reshape(4, 5).T)
    np.testing.assert_array_equal(again[2][0], new[40:44])
    assert np.shares_memory(again[1].weight, new) and again[0] == {"keep": 1}
    np.testing.assert_array_equal(again[1].x, tree[1].x)


def test_restore_probs_fills_only_what_was_left_out() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    _, kept = L.attention_core_forward(q, k, v)
    _, dropped = L.attention_core_forward(q, k, v, keep_probs=False)
    outer = ("block", [dropped, kept])
    restored = restore_probs(outer)
    np.testing.assert_array_equal(restored[1][0].att, kept.att)
    assert restored[1][1].att is kept.att and outer[1][0].att is None
