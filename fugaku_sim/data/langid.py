"""Language identification good enough to route Japanese and English text.

By script, not by a trained model: Japanese is the only language here written with kana, so
a document whose letters are largely kana and kanji (with some kana, to tell it from Chinese)
is ``ja``; one whose letters are Latin with next to no Japanese is ``en``; anything else is
``und`` (undetermined) and is dropped from ja/en sources with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Unicode blocks: Hiragana 3040-309F, Katakana 30A0-30FF, Katakana Phonetic Extensions
# 31F0-31FF, half-width katakana FF66-FF9D; CJK Unified Ideographs 4E00-9FFF and
# Extension A 3400-4DBF; iteration mark 3005.
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_KANJI = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\u3005]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class LanguageGuess:
    """Outcome of :func:`identify_language`; shares are fractions of all letters."""

    language: str  # "ja", "en" or "und"
    ja_share: float
    latin_share: float
    letters: int
    reason: str


def identify_language(text: str, min_ja_share: float = 0.15,
                      max_ja_share_en: float = 0.01) -> LanguageGuess:
    """Guess ``ja``, ``en`` or ``und`` from the share of Japanese and Latin letters.

    ``ja`` needs ``ja_share >= min_ja_share`` and kana to be at least 5% of the Japanese
    letters (kanji alone would be Chinese); ``en`` needs ``ja_share <= max_ja_share_en`` and
    Latin letters to be at least half of all letters.
    """
    kana = len(_KANA.findall(text))
    kanji = len(_KANJI.findall(text))
    latin = len(_LATIN.findall(text))
    other = len(_LETTER.findall(text)) - kana - kanji - latin
    letters = kana + kanji + latin + max(other, 0)
    if letters == 0:
        return LanguageGuess("und", 0.0, 0.0, 0, "no letters")
    ja_share = (kana + kanji) / letters
    latin_share = latin / letters
    if ja_share >= min_ja_share and kana >= 0.05 * (kana + kanji):
        return LanguageGuess("ja", ja_share, latin_share, letters, "kana and kanji")
    if ja_share <= max_ja_share_en and latin_share >= 0.5:
        return LanguageGuess("en", ja_share, latin_share, letters, "Latin letters")
    if ja_share >= min_ja_share:
        return LanguageGuess("und", ja_share, latin_share, letters, "kanji without kana")
    return LanguageGuess("und", ja_share, latin_share, letters,
                         f"Japanese letter share {ja_share:.2f}, Latin {latin_share:.2f}")
