"""The data loader: Megatron-style samples, blending, data-parallel slices, resumability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.data.blend import read_blend
from fugaku_sim.errors import UserError
from fugaku_sim.train.loader import (
    BlendedSamples,
    RankBatches,
    ShardSamples,
    blending_indices,
    open_split,
    rank_micro_batches,
)

from .helpers import write_data, write_shard


class Docs:
    """An in-memory stand-in for IndexedDataset (sizes and documents)."""

    def __init__(self, docs: list[np.ndarray]) -> None:
        self.sizes = np.array([len(d) for d in docs], dtype=np.int32)
        self.tokens = np.concatenate(docs)


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


def reference_sample(s: ShardSamples, docs: list[np.ndarray], index: int) -> np.ndarray:
    """Sample ``index`` the slow, obvious way: concatenate the epoch's shuffled documents and
    cut at (position in the epoch's sample order) x seq_len."""
    epoch, within = divmod(index, s.per_epoch)
    order, _, perm = s._epoch(epoch)
    stream = np.concatenate([docs[i] for i in order])
    start = int(perm[within]) * s.seq_len
    return stream[start:start + s.seq_len + 1]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
       seq_len=st.integers(1, 16), seed=st.integers(0, 2**16),
       picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_one_gather_equals_the_stream_cut_sample_by_sample(
        sizes: list[int], seq_len: int, seed: int, picks: list[int]) -> None:
    """take() of any indices (several epochs, repeats, any order) is the reference cut, for
    documents shorter and longer than a sample."""
    docs = [np.arange(1000 * i, 1000 * i + n) for i, n in enumerate(sizes)]
    if sum(sizes) < seq_len + 1:
        return
    s = ShardSamples(Docs(docs), seq_len, seed=seed, key=5, name="x")
    indices = np.array([p % (4 * s.per_epoch) for p in picks])
    got = s.take(indices)
    assert got.shape == (len(indices), seq_len + 1) and got.dtype == np.int64
    for row, i in zip(got, indices):
        np.testing.assert_array_equal(row, reference_sample(s, docs, int(i)))


def test_blended_batch_and_rank_windows_read_the_same_samples() -> None:
    """A rank's window of steps reads, step by step, its slice of each global batch, as
    single-sample reads do; a window stops at the last step the split was built for."""
    shards = [ShardSamples(Docs([np.arange(100 * k + 7 * i, 100 * k + 7 * i + 5 + i)
                                 for i in range(9)]), 6, seed=2, key=k, name=str(k))
              for k in range(3)]
    gb, dp, steps = 8, 2, 11
    blended = BlendedSamples(shards, [0.5, 0.3, 0.2], steps * gb)
    one_by_one = np.stack([blended[j] for j in range(len(blended))])
    np.testing.assert_array_equal(blended.batch(0, len(blended)), one_by_one)
    for rank in range(dp):
        batches = RankBatches(blended, gb, dp, rank)
        batches.window = 4  # 11 steps: windows of 4, 4 and 3
        for step in [*range(steps), 3, 0]:  # then backwards: a window is re-read
            start = step * gb + rank * gb // dp
            np.testing.assert_array_equal(batches(step), one_by_one[start:start + gb // dp])
        with pytest.raises(IndexError, match="step 11 asked, samples for 11 built"):
            batches(steps)
    with pytest.raises(IndexError, match="sample 88 asked, 88 built"):
        blended.take(np.array([3, 88]))


def test_window_is_bounded_by_bytes() -> None:
    shard = ShardSamples(Docs([np.arange(5000)]), 1023, seed=0, key=0, name="x")
    big = RankBatches(BlendedSamples([shard], [1.0], 4), global_batch=512, dp=1, dp_rank=0)
    assert big.window == 4  # 512 samples of 1024 int64 tokens: 4 MiB a step, 16 MiB a window
    small = RankBatches(BlendedSamples([shard], [1.0], 4), global_batch=2, dp=2, dp_rank=1)
    assert small.window == RankBatches.MAX_WINDOW_STEPS


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
