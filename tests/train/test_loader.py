"""The data loader: Megatron-style samples, blending, data-parallel slices, resumability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.data.blend import read_blend
from fugaku_sim.errors import UserError
from fugaku_sim.train.loader import (
    ShardSamples,
    blending_indices,
    open_split,
    rank_micro_batches,
)

from .helpers import write_data, write_shard


class Docs:
    """An in-memory stand-in for IndexedDataset (sizes and documents)."""

    def __init__(self, docs: list[np.ndarray]) -> None:
        self.docs = docs
        self.sizes = np.array([len(d) for d in docs], dtype=np.int32)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.docs[i]


def test_samples_tile_the_shuffled_stream() -> None:
    """An epoch's samples are the stream of its shuffled documents cut every seq_len tokens,
    consecutive samples sharing one token."""
    docs = [np.arange(100 * i, 100 * i + n) for i, n in enumerate([5, 9, 3, 12, 7])]
    s = ShardSamples(Docs(docs), seq_len=4, seed=1, key=0, name="x")
    assert s.per_epoch == (36 - 1) // 4
    order, _, perm = s._epoch(0)
    stream = np.concatenate([docs[i] for i in order])
    by_position = {int(p): s[j] for j, p in enumerate(perm)}
    for k in range(s.per_epoch):
        np.testing.assert_array_equal(by_position[k], stream[4 * k:4 * k + 5])
    assert not np.array_equal(s._epoch(1)[0], order) or not np.array_equal(s._epoch(1)[2], perm)


def test_samples_are_a_pure_function_of_their_index() -> None:
    docs = [np.arange(n) for n in (20, 30, 25)]
    a = ShardSamples(Docs(docs), 8, seed=3, key=7, name="x")
    b = ShardSamples(Docs(docs), 8, seed=3, key=7, name="x")
    indices = [40, 2, 17, 0, 33]
    for i in indices:  # b visits in another order (another epoch first)
        np.testing.assert_array_equal(a[i], b[i])
    c = ShardSamples(Docs(docs), 8, seed=4, key=7, name="x")
    assert any(not np.array_equal(a[i], c[i]) for i in range(9))


def test_too_small_shard() -> None:
    with pytest.raises(UserError, match="fewer than one sample"):
        ShardSamples(Docs([np.arange(5)]), 8, 0, 0, "tiny")


def test_blending_follows_weights_in_every_prefix() -> None:
    which, within = blending_indices([0.6, 0.3, 0.1], 1000)
    for n in (10, 100, 1000):
        counts = np.bincount(which[:n], minlength=3)
        np.testing.assert_allclose(counts / n, [0.6, 0.3, 0.1], atol=1.5 / n)
    for k in range(3):  # each shard's samples are taken in order 0, 1, 2, ...
        np.testing.assert_array_equal(within[which == k], np.arange((which == k).sum()))
    assert blending_indices([1, 1], 3)[0].tolist() == [0, 1, 0]  # Megatron's tie rule


def test_data_parallel_slices_make_the_global_batch() -> None:
    samples = np.arange(8 * 5).reshape(8, 5)
    parts = [rank_micro_batches(samples, 2, r, 2) for r in range(2)]
    tokens = np.concatenate([t for part in parts for t, _ in part])
    np.testing.assert_array_equal(tokens, samples[:, :-1])
    targets = np.concatenate([y for part in parts for _, y in part])
    np.testing.assert_array_equal(targets, samples[:, 1:])
    assert [len(p) for p in parts] == [2, 2]


def test_open_split_reads_the_blend(tmp_path: Path) -> None:
    data = write_data(tmp_path)
    blend = read_blend(data)
    assert blend.vocab_size == 64 and [e.domain for e in blend.splits["train"]] == ["ja", "en"]
    train = open_split(blend.shards("train", data), "train", seq_len=8, seed=1, size=50,
                       vocab=64)
    assert train is not None and len(train) == 50
    batch = train.batch(10, 6)
    assert batch.shape == (6, 9) and batch.dtype == np.int64
    assert batch.max() < 64
    again = open_split(blend.shards("train", data), "train", seq_len=8, seed=1, size=20,
                       vocab=64)
    assert again is not None
    np.testing.assert_array_equal(again.batch(10, 6), batch)  # resumable: same samples
    assert open_split(blend.shards("test", data), "test", 8, 1, 5, 64) is None  # no shards
    with pytest.raises(IndexError):
        train.batch(48, 4)


def test_missing_blend_and_missing_shard(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="blend.json: no such file; run `fugaku-sim data mix`"):
        read_blend(tmp_path)
    write_shard(tmp_path / "shards/a", [np.arange(3, 40)])
    blend = {"eod_id": 2, "vocab_size": 64, "splits": {"train": [
        {"domain": "a", "prefix": "shards/a", "weight": 1.0},
        {"domain": "b", "prefix": "shards/b", "weight": 1.0}]}}
    (tmp_path / "blend.json").write_text(json.dumps(blend))
    with pytest.raises(UserError, match="b.idx"):
        open_split(read_blend(tmp_path).shards("train", tmp_path), "train", 8, 0, 4, 64)
