"""A release's tokenizer files: written from the data stage's model, checked against it
without transformers, and compared with sentencepiece on held-out text when tokenizers is
installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.release.hf_tokenizer import TOKENIZER_CONFIG, TOKENIZER_JSON
from fugaku_sim.release.tokenizer_files import (
    SPM_FILE,
    check_tokenizer_files,
    heldout_notes,
    write_tokenizer_files,
)
from tests.evaluate.synthetic import indented_documents, synthetic_texts, train_tokenizer

TEXTS = synthetic_texts(seed=0, docs_per_domain=40)


@pytest.fixture
def written(rel_inputs: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "files"
    out.mkdir()
    assert write_tokenizer_files(out, rel_inputs["data"] / SPM_FILE, 32) == []
    return out


def test_three_files_and_their_settings(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted(
        [TOKENIZER_CONFIG, TOKENIZER_JSON, SPM_FILE])
    cfg = json.loads((written / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and cfg["model_max_length"] == 32
    assert (cfg["bos_token"], cfg["eos_token"], cfg["unk_token"], cfg["pad_token"]) == (
        "<s>", "</s>", "<unk>", "</s>")
    assert cfg["split_special_tokens"] is True and cfg["add_bos_token"] is False
    body = json.loads((written / TOKENIZER_JSON).read_text(encoding="utf-8"))
    assert body["model"]["type"] == "Unigram" and body["model"]["byte_fallback"] is True
    assert [t["content"] for t in body["added_tokens"]] == ["<unk>", "<s>", "</s>"]
    assert body["post_processor"] is None  # no BOS/EOS added, as the data stage encodes
    check_tokenizer_files(written, 32)


def test_the_model_file_keeps_no_training_paths(written: Path, rel_inputs: dict[str, Path]
                                                ) -> None:
    source = (rel_inputs["data"] / SPM_FILE).read_bytes()
    assert str(rel_inputs["data"]).encode() in source
    assert str(rel_inputs["data"]).encode() not in (written / SPM_FILE).read_bytes()


@pytest.mark.parametrize("name, edit, message", [
    (TOKENIZER_JSON, lambda o: o["model"]["vocab"][300].__setitem__(1, -1.0), "in model"),
    (TOKENIZER_JSON, lambda o: o.__setitem__("pre_tokenizer", None), "in pre_tokenizer"),
    (TOKENIZER_CONFIG, lambda o: o.__setitem__("model_max_length", 64), "model_max_length"),
])
def test_a_changed_file_fails_the_check(written: Path, name: str, edit, message: str) -> None:
    obj = json.loads((written / name).read_text(encoding="utf-8"))
    edit(obj)
    (written / name).write_text(json.dumps(obj), encoding="utf-8")
    with pytest.raises(UserError, match=f"differs from what tokenizer.model converts to.*"
                                        f"{message}"):
        check_tokenizer_files(written, 32)


def test_not_json_fails_the_check(written: Path) -> None:
    (written / TOKENIZER_JSON).write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="not valid JSON"):
        check_tokenizer_files(written, 32)


def test_heldout_notes_name_documents_of_an_unrounded_model(tmp_path: Path) -> None:
    """A tokenizer trained before score rounding gives other ids on long indented text; the
    build says so and what to do."""
    pytest.importorskip("tokenizers")
    out = tmp_path / "release"
    out.mkdir()
    model = train_tokenizer([t for ts in TEXTS.values() for t in ts], tmp_path / "tok", 400,
                            rounded=False)
    write_tokenizer_files(out, model, 64)
    notes = heldout_notes(out, {"code": indented_documents(TEXTS, 3), "ja": TEXTS["ja"]})
    assert len(notes) == 2 and "held-out code text" in notes[0]
    assert "predates score rounding" in notes[1]
    rounded = tmp_path / "rounded"
    shutil.copytree(out, rounded)
    model = train_tokenizer([t for ts in TEXTS.values() for t in ts], tmp_path / "tok2", 400)
    write_tokenizer_files(rounded, model, 64)
    assert heldout_notes(rounded, {"code": indented_documents(TEXTS, 3)}) == []


def test_probe_texts_catch_a_tokenizer_json_that_encodes_differently(written: Path) -> None:
    """Consistent structure is not enough: a file that loads but encodes otherwise (here:
    the dummy prefix dropped) fails on the probe texts."""
    pytest.importorskip("tokenizers")
    from fugaku_sim.release.tokenizer_files import PROBE_TEXTS, compare_ids

    obj = json.loads((written / TOKENIZER_JSON).read_text(encoding="utf-8"))
    obj["normalizer"]["normalizers"].pop()  # the Prepend step
    (written / TOKENIZER_JSON).write_text(json.dumps(obj), encoding="utf-8")
    assert "encodes differently" in compare_ids(written, PROBE_TEXTS)

