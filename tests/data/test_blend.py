"""The blend file: written and read in one place, relative prefixes, old absolute ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.data.blend import (
    Blend,
    BlendEntry,
    read_blend,
    read_data_path,
    write_blend,
)
from fugaku_sim.data.indexed import IndexedDataset, IndexedDatasetWriter
from fugaku_sim.errors import UserError


def write_folder(root: Path) -> Blend:
    """Two train shards and one valid shard under ``root/shards``, and their blend."""
    entries = {}
    for split, domains in (("train", ("ja", "en")), ("valid", ("ja",))):
        rows = []
        for i, domain in enumerate(domains):
            prefix = f"shards/{domain}_{split}"
            with IndexedDatasetWriter(root / prefix, np.uint16) as w:
                w.add_document(np.arange(3, 10 + i, dtype=np.uint16))
            rows.append(BlendEntry(domain=domain, prefix=prefix, weight=0.75 - 0.5 * i,
                                   tokens=w.num_tokens))
        entries[split] = tuple(rows)
    blend = Blend(tokenizer="tokenizer.model", eod_id=2, vocab_size=64, splits=entries)
    write_blend(root, blend)
    return blend


def test_round_trip_and_megatron_form(tmp_path: Path) -> None:
    blend = write_folder(tmp_path)
    assert read_blend(tmp_path) == blend
    raw = json.loads((tmp_path / "blend.json").read_text())
    assert list(raw) == ["tokenizer", "eod_id", "vocab_size", "splits"]  # no empty keys
    assert (tmp_path / "blend_train.txt").read_text() == "0.75 shards/ja_train 0.25 shards/en_train\n"
    assert read_data_path(tmp_path / "blend_train.txt") == [
        (0.75, tmp_path / "shards/ja_train"), (0.25, tmp_path / "shards/en_train")]


def test_a_moved_folder_still_reads_its_shards(tmp_path: Path) -> None:
    write_folder(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "b")
    blend = read_blend(tmp_path / "b")
    shards = blend.shards("train", tmp_path / "b")
    assert [s.prefix for s in shards] == [tmp_path / "b/shards/ja_train",
                                          tmp_path / "b/shards/en_train"]
    assert [IndexedDataset(s.prefix).num_tokens for s in shards] == [7, 8]
    assert blend.shards("test", tmp_path / "b") == []
    pairs = read_data_path(tmp_path / "b/blend_valid.txt")
    assert pairs == [(0.75, tmp_path / "b/shards/ja_valid")]


def test_old_absolute_prefixes_are_still_read(tmp_path: Path) -> None:
    """Files written before prefixes became relative name the shards by absolute path."""
    write_folder(tmp_path / "data")
    raw = json.loads((tmp_path / "data/blend.json").read_text())
    for rows in raw["splits"].values():
        for row in rows:
            row["prefix"] = str(tmp_path / "data" / row["prefix"])
    (tmp_path / "data/blend.json").write_text(json.dumps(raw))
    (tmp_path / "data/blend_train.txt").write_text(
        f"0.75 {tmp_path}/data/shards/ja_train 0.25 {tmp_path}/data/shards/en_train\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    shards = read_blend(tmp_path / "data").shards("train", elsewhere)
    assert [s.prefix for s in shards] == [tmp_path / "data/shards/ja_train",
                                          tmp_path / "data/shards/en_train"]
    assert [p for _, p in read_data_path(tmp_path / "data/blend_train.txt")] == [
        s.prefix for s in shards]


@pytest.mark.parametrize(("content", "message"), [
    ("{", "blend.json: not valid JSON"),
    ("[]", "blend.json: expected a JSON object, found list"),
    ('{"eod_id": 2, "splits": {}}', "blend.json: vocab_size: missing required key"),
    ('{"eod_id": 2, "vocab_size": 8, "splits": {"train": '
     '[{"domain": "a", "prefix": "s", "weight": -1}]}}', "splits.train.0.weight"),
    ('{"eod_id": 2, "vocab_size": 8, "splits": {"train": '
     '[{"domain": "a", "prefix": "s", "weight": 0}]}}', "splits.train: needs a positive weight"),
    ('{"eod_id": 2, "vocab_size": 8, "splits": {"tran": []}}', "splits.tran: not one of"),
    ('{"eod_id": 2, "vocab_size": 8, "splits": {"train": '
     '[{"domain": "a", "prefix": "s", "weight": NaN}]}}', "splits.train.0.weight"),
    ('{"eod_id": 2, "vocab_size": true, "splits": {}}', "vocab_size"),
    ('{"eod_id": 2, "vocab_size": 8, "splits": {}, "vocab": 3}', "vocab: unknown key"),
])
def test_bad_blend_is_one_line_naming_file_and_field(tmp_path: Path, content: str,
                                                     message: str) -> None:
    (tmp_path / "blend.json").write_text(content)
    with pytest.raises(UserError, match="--data: ") as info:
        read_blend(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(tmp_path / "blend.json") in str(info.value)


def test_missing_blend_says_which_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"blend.json: no such file; run `fugaku-sim data mix`"):
        read_blend(tmp_path, "--data")


def test_bad_data_path_file(tmp_path: Path) -> None:
    (tmp_path / "blend_train.txt").write_text("0.5 shards/a 0.5\n")
    with pytest.raises(UserError, match="expected 'weight prefix' pairs"):
        read_data_path(tmp_path / "blend_train.txt")
    with pytest.raises(UserError, match="blend_valid.txt: no such file; rerun"):
        read_data_path(tmp_path / "blend_valid.txt")
    for weight in ("nan", "inf", "-1"):
        (tmp_path / "blend_train.txt").write_text(f"{weight} shards/a 0.5 shards/b\n")
        with pytest.raises(UserError, match=f"weight {weight.replace('-', '-')}.* not a finite"):
            read_data_path(tmp_path / "blend_train.txt")
