"""Reading a sentencepiece model without protobuf: the same pieces, scores and types as
sentencepiece's own API, the normaliser settings it was trained with, rewritten scores and
removed trainer paths, and one-line errors for files that are not models."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from fugaku_sim.data.spm_model import (
    PieceType,
    fields,
    parse_model,
    read_model,
    same_model,
    with_scores,
    without_training_paths,
)
from fugaku_sim.errors import UserError
from tests.evaluate.synthetic import synthetic_texts, train_tokenizer

TEXTS = [t for ts in synthetic_texts(seed=1, docs_per_domain=30).values() for t in ts]


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(TEXTS, tmp_path_factory.mktemp("spm") / "tokenizer", 400)


def _types(sp: spm.SentencePieceProcessor, i: int) -> PieceType:
    for kind, test in ((PieceType.UNKNOWN, sp.is_unknown), (PieceType.CONTROL, sp.is_control),
                       (PieceType.BYTE, sp.is_byte), (PieceType.UNUSED, sp.is_unused)):
        if test(i):
            return kind
    return PieceType.NORMAL


def test_pieces_scores_and_types_equal_sentencepiece(identity_model: Path) -> None:
    m = read_model(identity_model)
    sp = spm.SentencePieceProcessor(model_file=str(identity_model))
    assert len(m.pieces) == sp.get_piece_size()
    for i, p in enumerate(m.pieces):
        assert (p.text, p.score, p.type) == (sp.id_to_piece(i), sp.get_score(i), _types(sp, i))
    assert len(m.ids_of(PieceType.BYTE)) == 256 and m.ids_of(PieceType.CONTROL) == [1, 2]


def test_settings_of_the_data_stage(identity_model: Path) -> None:
    m = read_model(identity_model)
    assert (m.model_type, m.byte_fallback, m.treat_whitespace_as_suffix) == ("unigram", True,
                                                                             False)
    assert (m.unk_id, m.bos_id, m.eos_id, m.pad_id) == (0, 1, 2, -1)
    assert (m.normalizer_name, m.precompiled_charsmap) == ("identity", b"")
    assert (m.add_dummy_prefix, m.remove_extra_whitespaces, m.escape_whitespaces) == (
        True, False, True)


def test_settings_of_sentencepiece_defaults(tmp_path: Path) -> None:
    path = train_tokenizer(TEXTS, tmp_path / "nfkc", 500, model_type="bpe", byte_fallback=False,
                           normalization_rule_name="nmt_nfkc", remove_extra_whitespaces=True,
                           pad_id=3)
    m = read_model(path)
    assert (m.model_type, m.byte_fallback, m.pad_id) == ("bpe", False, 3)
    assert m.normalizer_name == "nmt_nfkc" and len(m.precompiled_charsmap) > 1000
    assert m.remove_extra_whitespaces and m.pieces[3].type == PieceType.CONTROL


def test_with_scores_changes_the_scores_only(identity_model: Path) -> None:
    data = identity_model.read_bytes()
    before = parse_model(data)
    scores = [-0.5 * i for i in range(len(before.pieces))]
    after = parse_model(with_scores(data, scores))
    assert [p.score for p in after.pieces] == scores
    assert [(p.text, p.type) for p in after.pieces] == [(p.text, p.type) for p in before.pieces]
    assert after.normalizer_name == before.normalizer_name
    sp = spm.SentencePieceProcessor(model_proto=with_scores(data, scores))
    assert sp.get_score(7) == -3.5
    with pytest.raises(ValueError, match="scores"):
        with_scores(data, scores[:-1])


def test_training_paths_are_removed_and_ids_kept(identity_model: Path) -> None:
    data = identity_model.read_bytes()
    assert str(identity_model.parent).encode() in data  # the sample and prefix paths
    clean = without_training_paths(data)
    assert str(identity_model.parent).encode() not in clean
    assert parse_model(clean) == parse_model(data)
    a = spm.SentencePieceProcessor(model_proto=data)
    b = spm.SentencePieceProcessor(model_proto=clean)
    assert all(a.encode(t) == b.encode(t) for t in TEXTS)
    copy = identity_model.with_name("copy.model")
    copy.write_bytes(clean)
    assert same_model(identity_model, copy)
    copy.write_bytes(with_scores(clean, [p.score / 2 for p in parse_model(clean).pieces]))
    assert not same_model(identity_model, copy)


@pytest.mark.parametrize("content, message", [
    (b"", "no pieces"), (b"\x0a\xff", "truncated"), (b"\x0f", "wire type"),
    (b"\x0a\x02\x18\x09", "9 is not a valid PieceType"), (b"\x12\x02\x18", "truncated")])
def test_not_a_model_is_a_one_line_user_error(tmp_path: Path, content: bytes,
                                               message: str) -> None:
    path = tmp_path / "bad.model"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a sentencepiece model") as info:
        read_model(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unreadable"):
        read_model(tmp_path / "absent.model")


def test_wire_format_fields() -> None:
    # field 1 varint 150 (protobuf.dev's example), field 2 string "hi", field 3 fixed32 1.0
    assert fields(b"\x08\x96\x01\x12\x02hi\x1d\x00\x00\x80\x3f") == [
        (1, 150), (2, b"hi"), (3, 0x3F800000)]
