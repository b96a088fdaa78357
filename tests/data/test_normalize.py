"""Normalisation keeps Japanese intact; boilerplate strippers; document splitting."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.data.normalize import normalize_text, split_document, strip_gutenberg


def test_japanese_punctuation_is_kept_but_fullwidth_alnum_folds() -> None:
    counts: Counter[str] = Counter()
    text = "（注意）：ＧＮＵ版は１２３行～。①と㌔はそのまま…\r\n"
    out = normalize_text(text, counts)
    assert out == "（注意）：GNU版は123行～。①と㌔はそのまま…\n"
    assert counts["fullwidth_alnum_folded"] == 6


def test_halfwidth_katakana_becomes_fullwidth_with_voicing() -> None:
    assert normalize_text("ｶﾞｲﾄﾞ") == "ガイド\n"


def test_control_characters_and_blank_runs() -> None:
    counts: Counter[str] = Counter()
    out = normalize_text("a\x00b\u200bc\x1b  \n\n\n\nd\tе", counts)
    assert out == "abc\n\nd\tе\n"
    assert counts["control_chars_removed"] == 3


def test_nfc_composes() -> None:
    assert normalize_text("か\u3099") == "が\n"


def test_strip_gutenberg_modern_markers() -> None:
    text = ("The Project Gutenberg eBook of X\nlicence blah\n"
            "*** START OF THE PROJECT GUTENBERG EBOOK X ***\nBody line.\n"
            "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nmore licence\n")
    body, removed = strip_gutenberg(text)
    assert body == "Body line.\n" and removed > 0


def test_strip_gutenberg_small_print() -> None:
    text = "legal\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\nPlay.\n"
    assert strip_gutenberg(text)[0] == "Play.\n"
    assert strip_gutenberg("No markers.\n") == ("No markers.\n", 0)


@given(st.text(alphabet=st.sampled_from("ab あ\n"), max_size=400), st.integers(5, 60))
def test_split_document_is_lossless_and_bounded(text: str, max_chars: int) -> None:
    pieces = split_document(text, max_chars)
    assert "".join(pieces) == text
    assert all(len(p) <= max_chars for p in pieces) or len(text) <= max_chars
