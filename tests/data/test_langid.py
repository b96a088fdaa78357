"""Script-based language identification routes ja and en."""

from __future__ import annotations

from data_corpus import EN_SENTENCES, JA_SENTENCES

from fugaku_sim.data.langid import identify_language


def test_japanese_and_english() -> None:
    assert identify_language("".join(JA_SENTENCES[:5])).language == "ja"
    assert identify_language(" ".join(EN_SENTENCES[:5])).language == "en"


def test_japanese_man_page_with_options_is_ja() -> None:
    text = "ls - ディレクトリの内容をリスト表示する\n-a, --all\n. で始まる要素を無視しない\n"
    assert identify_language(text).language == "ja"


def test_chinese_without_kana_and_empty_are_undetermined() -> None:
    assert identify_language("我们今天学习中文语法和汉字书写方法").language == "und"
    assert identify_language("1234 + 5678 = ?").language == "und"


def test_mixed_text_is_neither() -> None:
    guess = identify_language("Hello world " * 5 + "日本語です")
    assert guess.language == "und" and 0 < guess.ja_share < 0.15
