"""End to end on small written corpora: every stage, the output contract, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from data_corpus import small_config

from fugaku_sim.cli import main
from fugaku_sim.data.blend import read_data_path
from fugaku_sim.data.config import DOMAINS, SPLITS, load_data_config
from fugaku_sim.data.indexed import IndexedDataset
from fugaku_sim.data.maths import parse_operands
from fugaku_sim.data.pipeline import STAGES, run_all


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("pipe")
    cfg = small_config(root)
    run_all(cfg, root / "out", quiet=True)
    return root / "out", cfg


def test_outputs_exist(built: tuple[Path, object]) -> None:
    out, _ = built
    for name in ("tokenizer.model", "tokenizer.vocab", "blend.json", "blend_train.txt",
                 "blend_valid.txt", "blend_test.txt", "manifest.json", "composition.png",
                 "maths_eval.jsonl", "raw/report.json", "clean/report.json",
                 "dedup/report.json", "tokenized/report.json"):
        assert (out / name).is_file(), name
    for d in DOMAINS:
        assert (out / "heldout" / f"{d}.jsonl").is_file()
        for s in SPLITS:
            assert (out / "shards" / f"{d}_{s}.bin").is_file()
            assert (out / "shards" / f"{d}_{s}.idx").is_file()
    assert not list(out.rglob(".*tmp-*"))


def test_tokenizer_ids_and_round_trip_on_heldout(built: tuple[Path, object]) -> None:
    out, _ = built
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    assert sp.vocab_size() == 1000
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert sp.id_to_piece(2) == "</s>"
    for d in DOMAINS:
        texts = [json.loads(x)["text"] for x in (out / "heldout" / f"{d}.jsonl").open()]
        assert texts, d
        for text in texts:
            assert sp.decode(sp.encode(text)) == text
    odd = "未知の文字：龘𠮷 ｶﾀｶﾅ\ttab ✓ — \x7f end"
    assert sp.decode(sp.encode(odd)) == odd


def test_shards_hold_documents_ending_in_eod(built: tuple[Path, object]) -> None:
    out, _ = built
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    ds = IndexedDataset(out / "shards" / "ja_test")
    assert ds.dtype == np.uint16 and len(ds) > 0
    held = [json.loads(x)["text"] for x in (out / "heldout" / "ja.jsonl").open()]
    decoded = [sp.decode(ds[i][:-1].tolist()) for i in range(len(ds))]
    assert decoded == held
    assert all(ds[i][-1] == 2 for i in range(len(ds)))


def test_blend_contract(built: tuple[Path, object]) -> None:
    out, _ = built
    blend = json.loads((out / "blend.json").read_text())
    assert blend["tokenizer"] == "tokenizer.model" and blend["eod_id"] == 2
    assert blend["vocab_size"] == 1000
    for split in SPLITS:
        rows = blend["splits"][split]
        assert sum(r["weight"] for r in rows) == pytest.approx(1.0)
        for r in rows:
            assert IndexedDataset(out / r["prefix"]).num_tokens == r["tokens"]
        assert not Path(r["prefix"]).is_absolute()  # the folder can be moved
        pairs = read_data_path(out / f"blend_{split}.txt")
        assert [w for w, _ in pairs] == pytest.approx([r["weight"] for r in rows])
        assert [p for _, p in pairs] == [out / r["prefix"] for r in rows]


def test_manifest_and_mixture(built: tuple[Path, object]) -> None:
    out, _ = built
    m = json.loads((out / "manifest.json").read_text())
    src = m["sources"]["ja-files"]
    assert src["licence"] == "test text" and len(src["sha256"]) == 64
    assert src["documents"] == 60 and src["tokens"] > 0 and src["bytes"] > src["characters"]
    assert set(m["filters"]["ja-files"]) >= {"clean_dropped", "dedup_removed", "normalisation"}
    mix = m["mixture"]["domains"]
    assert abs(mix["ja"]["achieved_share"] - mix["ja"]["target_share"]) <= 0.02
    assert sum(r["achieved_share"] for r in mix.values()) == pytest.approx(1.0)
    assert m["splits"]["tokens"]["ja_train"]["tokens"] == mix["ja"]["available_tokens"]


def test_maths_eval_is_disjoint_from_training(built: tuple[Path, object]) -> None:
    out, _ = built
    held = [json.loads(x) for x in (out / "maths_eval.jsonl").open()]
    assert len(held) == 100 and all(set(h) == {"prompt", "answer"} for h in held)
    held_keys = {tuple(sorted(parse_operands(h["prompt"]))) for h in held}
    train_keys = set()
    for split in SPLITS:
        for line in (out / "dedup" / f"maths_{split}.jsonl").open():
            for row in json.loads(line)["text"].splitlines():
                train_keys.add(tuple(sorted(parse_operands(row.rsplit("=", 1)[0]))))
    assert train_keys and not held_keys & train_keys


def test_cli_stage_by_stage_matches(built: tuple[Path, object], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    ref, cfg = built
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))  # type: ignore[attr-defined]
    out = tmp_path / "out"
    for stage in STAGES:
        assert main(["data", stage, "--config", str(cfg_path), "--out", str(out),
                     "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["stage"] == stage
    for d in DOMAINS:
        a, b = IndexedDataset(out / "shards" / f"{d}_train"), IndexedDataset(
            ref / "shards" / f"{d}_train")
        assert np.array_equal(a.sizes, b.sizes)


def test_stage_without_its_input_exits_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "tokenize", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "run `fugaku-sim data dedup` first" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get for the corpus")
def test_ci_preset_end_to_end(tmp_path: Path) -> None:
    reports = run_all(load_data_config("ci"), tmp_path / "out", quiet=True)
    ja = reports["mix"]["mixture"]["domains"]["ja"]
    assert abs(ja["achieved_share"] - ja["target_share"]) <= 0.02
    trip = reports["tokenizer"]["round_trip_heldout"]
    assert all(s["exact"] == s["documents"] > 0 for s in trip.values())
