"""Synthetic-token data for timing runs: what the trainer reads, reused when big enough."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fugaku_sim.calibrate.synthetic import DOC_TOKENS, write_synthetic_data
from fugaku_sim.data.blend import read_blend
from fugaku_sim.data.indexed import IndexedDataset
from fugaku_sim.train.loader import open_split


def test_written_data_is_a_blend_the_trainer_reads(tmp_path: Path) -> None:
    out = write_synthetic_data(tmp_path / "syn", vocab=100, tokens=3000, seed=1)
    blend = read_blend(out)
    assert (blend.vocab_size, blend.eod_id, blend.tokenizer) == (100, 99, None)
    assert blend.synthetic_tokens == 3000
    for split in ("train", "valid"):
        (shard,) = blend.shards(split, out)
        ds = IndexedDataset(shard.prefix)
        assert ds.num_tokens == 3 * DOC_TOKENS  # whole documents covering 3000 tokens
        assert all(ds[i][-1] == 99 and ds[i][:-1].max() < 99 for i in range(len(ds)))
    samples = open_split(blend.shards("train", out), "train", 16, 0, 4, 100)
    assert samples is not None and samples.batch(0, 4).shape == (4, 17)


def test_a_big_enough_directory_is_reused_and_a_corrupt_one_rewritten(tmp_path: Path) -> None:
    out = write_synthetic_data(tmp_path / "syn", vocab=100, tokens=3000)
    bin_file = out / "shards" / "synthetic_train.bin"
    before = bin_file.stat().st_mtime_ns
    write_synthetic_data(out, vocab=50, tokens=1000)  # smaller: reused
    assert bin_file.stat().st_mtime_ns == before
    write_synthetic_data(out, vocab=200, tokens=1000)  # larger vocabulary: written again
    assert read_blend(out).vocab_size == 200
    (out / "blend.json").write_text("{")
    write_synthetic_data(out, vocab=50, tokens=1000)
    assert read_blend(out).vocab_size == 50
    assert np.asarray(IndexedDataset(out / "shards/synthetic_valid")[0]).max() == 49
