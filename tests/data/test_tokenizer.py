"""The tokenizer stage's score rounding: why it is there (sentencepiece's float32 Viterbi
breaks ties by rounding, so an exact search gives other ids) and that it fixes that."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fugaku_sim.data.spm_model import read_model
from fugaku_sim.data.tokenizer import SCORE_GRID_LOG2, quantize_scores
from tests.evaluate.synthetic import indented_documents, synthetic_texts, train_tokenizer

TEXTS = synthetic_texts(seed=0, docs_per_domain=40)


def test_scores_are_on_the_grid_and_the_vocab_listing_matches(tmp_path: Path) -> None:
    model = train_tokenizer([t for ts in TEXTS.values() for t in ts], tmp_path / "tok", 400,
                            rounded=False)
    before = read_model(model)
    quantize_scores(model, model.with_suffix(".vocab"))
    after = read_model(model)
    step = 2.0 ** -SCORE_GRID_LOG2
    for b, a in zip(before.pieces, after.pieces):
        assert math.ldexp(a.score, SCORE_GRID_LOG2).is_integer()
        assert abs(a.score - b.score) <= step / 2 and a.text == b.text
    lines = model.with_suffix(".vocab").read_text(encoding="utf-8").splitlines()
    assert [ln.split("\t") for ln in lines] == [[p.text, f"{p.score:g}"] for p in after.pieces]


def test_rounded_scores_make_an_exact_search_agree_with_sentencepiece(tmp_path: Path) -> None:
    """Unrounded, sentencepiece and tokenizers' float64 search choose differently among
    equal-score runs of space pieces; rounded, every partial sum is exact in float32."""
    pytest.importorskip("tokenizers")
    from fugaku_sim.release.tokenizer_files import compare_ids, write_tokenizer_files

    model = train_tokenizer([t for ts in TEXTS.values() for t in ts], tmp_path / "tok", 400,
                            rounded=False)
    docs = indented_documents(TEXTS, 5)
    out = tmp_path / "release"
    out.mkdir()
    write_tokenizer_files(out, model, 64)
    assert "encodes differently" in compare_ids(out, docs)
    quantize_scores(model, model.with_suffix(".vocab"))
    write_tokenizer_files(out, model, 64)
    assert compare_ids(out, docs) == ""
