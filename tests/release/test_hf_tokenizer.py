"""The sentencepiece model as tokenizers JSON: the pieces where reserved text is cut, the
normaliser and merges for each sentencepiece setting, refusals, and (with the tokenizers
library) the same ids as sentencepiece for every kind of model the data stage can train,
on generated documents, probe texts and random strings built to hit every edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.data.spm_model import Piece, PieceType, SpmModel
from fugaku_sim.errors import UserError
from fugaku_sim.release.hf_tokenizer import (
    check_supported,
    guard_pattern,
    model_json,
    normalizer_json,
    reserved_cuts,
)
from tests.evaluate.synthetic import synthetic_texts, train_tokenizer

N, C, U, B = PieceType.NORMAL, PieceType.CONTROL, PieceType.UNKNOWN, PieceType.BYTE


def _model(normal: list[str], byte_fallback: bool = True, **changes: object) -> SpmModel:
    """A hand-made model: <unk>, <s>, </s>, two byte pieces, then ``normal`` pieces."""
    pieces = [Piece("<unk>", 0.0, U), Piece("<s>", 0.0, C), Piece("</s>", 0.0, C),
              Piece("<0x0A>", 0.0, B), Piece("<0x41>", 0.0, B)]
    pieces += [Piece(t, -1.0 - i, N) for i, t in enumerate(normal)]
    base = dict(pieces=tuple(pieces), model_type="unigram", byte_fallback=byte_fallback,
                treat_whitespace_as_suffix=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                normalizer_name="identity", precompiled_charsmap=b"", add_dummy_prefix=True,
                remove_extra_whitespaces=False, escape_whitespaces=True)
    return SpmModel(**{**base, **changes})  # type: ignore[arg-type]


CHARS = ["<", ">", "/", "s", "u", "n", "k", "0", "x", "A", "\u2581"]


def test_reserved_text_is_cut_after_its_first_character_when_nothing_spans_it() -> None:
    cuts, uncut = reserved_cuts(_model(CHARS))
    assert cuts == {"<unk>": 1, "<s>": 1, "</s>": 1, "<0x0A>": 1, "<0x41>": 1} and uncut == []
    assert guard_pattern({"<s>": 1, "</s>": 1}) == r"\x{3c}(?=s\x{3e}|\x{2f}s\x{3e})"


def test_a_cut_moves_past_pieces_that_would_span_it() -> None:
    # '</' spans '<|/s>'; '▁</s' spans '</|s>' (it agrees with '</s' and its '▁' lies outside)
    cuts, _ = reserved_cuts(_model([*CHARS, "</", "\u2581</s"]))
    assert cuts["</s>"] == 3
    # 'y0x' holds the pair '0x' but would need 'y' where '<0x0A>' has '<': no span
    cuts, _ = reserved_cuts(_model([*CHARS, "<0", "y0x"]))
    assert cuts["<0x0A>"] == 2 and cuts["<0x41>"] == 2
    cuts, _ = reserved_cuts(_model([*CHARS, "<0", "<0x"]))
    assert cuts["<0x0A>"] == 3


def test_reserved_text_that_pieces_span_everywhere_is_reported() -> None:
    cuts, uncut = reserved_cuts(_model([*CHARS, "<s", "s>"]))
    assert "<s>" in uncut and "<s>" not in cuts and "</s>" in cuts


def test_without_byte_fallback_a_run_of_unknown_characters_is_not_cut() -> None:
    # '<' and '/' are not pieces: sentencepiece writes '</' as one <unk>, so no cut between
    known = [c for c in CHARS if c not in "</"]
    cuts, _ = reserved_cuts(_model(known, byte_fallback=False))
    assert cuts["</s>"] == 2 and cuts["<s>"] == 1


def test_normaliser_follows_the_model_settings() -> None:
    steps = normalizer_json(_model(CHARS))["normalizers"]
    assert steps == [{"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
                     {"type": "Prepend", "prepend": "\u2581"}]
    full = normalizer_json(_model(CHARS, remove_extra_whitespaces=True,
                                  precompiled_charsmap=b"\x01\x02"))["normalizers"]
    assert [s["type"] for s in full] == ["Precompiled", "Replace", "Replace", "Replace",
                                         "Replace", "Prepend"]
    assert full[0]["precompiled_charsmap"] == "AQI="
    assert normalizer_json(_model(CHARS, add_dummy_prefix=False))["normalizers"][-1][
        "type"] == "Replace"


def test_bpe_merges_are_ranked_by_the_score_of_their_union() -> None:
    m = _model(["a", "b", "c", "bc", "ab", "abc"], model_type="bpe")
    # scores fall with the id: 'bc' (-4) before 'ab' (-5) before 'abc' (-6; two splits)
    assert model_json(m)["merges"] == [["b", "c"], ["a", "b"], ["a", "bc"], ["ab", "c"]]


@pytest.mark.parametrize("change, message", [
    ({"model_type": "word"}, "model type word"),
    ({"treat_whitespace_as_suffix": True}, "treat_whitespace_as_suffix"),
    ({"unk_id": 1}, "unknown id 1"),
])
def test_unsupported_models_are_refused_in_one_line(change: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        check_supported(_model(CHARS, **change), "x/tokenizer.model")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", [PieceType.USER_DEFINED, PieceType.UNUSED])
def test_user_defined_and_unused_pieces_are_refused(kind: PieceType) -> None:
    m = _model(CHARS)
    m = SpmModel(**{**m.__dict__, "pieces": (*m.pieces, Piece("<tool>", 0.0, kind))})
    with pytest.raises(UserError, match="user-defined or unused pieces"):
        check_supported(m, "x")


# --- the same ids as sentencepiece (needs the tokenizers library) --------------------------

KINDS = {
    "data stage": {},
    "bpe": {"model_type": "bpe"},
    "no byte fallback": {"byte_fallback": False},
    "sentencepiece defaults": {"normalization_rule_name": "nmt_nfkc",
                               "remove_extra_whitespaces": True, "split_digits": False,
                               "allow_whitespace_only_pieces": False},
}
DOCS = synthetic_texts(seed=2, docs_per_domain=40)
# characters of reserved pieces, spaces of both kinds, newlines and tabs, characters NFKC
# changes, characters the small vocabulary lacks (bytes), and whole words
ALPHABET = list("<>/sx0A1unkpad \u2581\n\t富岳は。ａＢ①é😀") + [
    "def", "The model", "  ", "</s>", "<0x0A>", " = "]


@pytest.fixture(scope="module", params=sorted(KINDS))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tokenizers")
    from fugaku_sim.release.tokenizer_files import write_tokenizer_files

    root = tmp_path_factory.mktemp("kind")
    model = train_tokenizer([t for ts in DOCS.values() for t in ts], root / "tokenizer", 500,
                            **KINDS[request.param])
    out = root / "release"
    out.mkdir()
    assert write_tokenizer_files(out, model, 64) == []
    return out


def test_ids_equal_sentencepiece_on_documents_and_probes(converted: Path) -> None:
    from fugaku_sim.release.tokenizer_files import PROBE_TEXTS, compare_ids

    for domain, docs in DOCS.items():
        assert compare_ids(converted, docs) == "", domain
    assert compare_ids(converted, PROBE_TEXTS) == ""


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(ALPHABET), max_size=40).map("".join),
                      min_size=1, max_size=25))
def test_ids_equal_sentencepiece_on_random_text(converted: Path, texts: list[str]) -> None:
    from fugaku_sim.release.tokenizer_files import compare_ids

    assert compare_ids(converted, texts) == ""
