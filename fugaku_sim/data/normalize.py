"""Unicode normalisation that keeps Japanese intact, and boilerplate strippers.

Why not NFKC: NFKC folds full-width punctuation that Japanese text uses on purpose
(``（`` -> ``(``, ``：`` -> ``:``, ``～`` -> ``~``), expands ``①`` to ``1`` and ``㌔`` to
``キロ``, and rewrites ``…``. We apply NFC (canonical composition only, which never changes
how text reads), then fold exactly two compatibility classes whose variants carry no meaning:

* full-width ASCII letters and digits (U+FF10-FF19, U+FF21-FF3A, U+FF41-FF5A) to ASCII, so
  ``ＧＮＵ`` and ``GNU`` are one token sequence;
* half-width katakana (U+FF61-FF9F) to full-width, composing voiced marks (``ｶﾞ`` -> ``ガ``),
  by NFKC applied to those runs only.

Control characters other than tab and newline, zero-width characters and the BOM are removed;
CRLF and CR become LF; trailing spaces go; runs of blank lines become one.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_FULLWIDTH_ALNUM = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
_HALFWIDTH_KANA = re.compile(r"[\uff61-\uff9f]+")
# C0 except \t \n, DEL, C1; zero-width space/joiners, word joiner, BOM, soft hyphen.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u00ad]")
_TRAILING = re.compile(r"[ \t\u3000]+$", re.M)
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str, counts: Counter[str] | None = None) -> str:
    """Normalise as the module docstring says; add what changed to ``counts``."""
    counts = counts if counts is not None else Counter()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text, n = _FULLWIDTH_ALNUM.subn(lambda m: chr(ord(m.group()) - 0xFEE0), text)
    counts["fullwidth_alnum_folded"] += n
    text, n = _HALFWIDTH_KANA.subn(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    counts["halfwidth_kana_runs_folded"] += n
    text, n = _CONTROL.subn("", text)
    counts["control_chars_removed"] += n
    text = _TRAILING.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n") + "\n" if text.strip() else ""


_GUT_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUT_END = re.compile(r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project "
                      r"Gutenberg).*$", re.M | re.I)
_SMALL_PRINT_END = re.compile(r"^\*END\*THE SMALL PRINT!.*$", re.M)


def strip_gutenberg(text: str) -> tuple[str, int]:
    """Remove Project Gutenberg headers, licence and footer; return text and chars removed.

    Handles the modern ``*** START OF ... ***`` / ``*** END OF ...`` markers and the older
    "SMALL PRINT" licence block that precedes the text (ends at ``*END*THE SMALL PRINT!``).
    """
    before = len(text)
    start = _GUT_START.search(text) or _SMALL_PRINT_END.search(text)
    if start:
        text = text[start.end():]
    end = _GUT_END.search(text)
    if end:
        text = text[:end.start()]
    text = text.strip("\n") + "\n"
    return text, max(0, before - len(text))


def split_document(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars`` at paragraph, then line, breaks."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"(?<=\n\n)", text):
        units = [para] if len(para) <= max_chars else _split_long(para, max_chars)
        for unit in units:
            if current and len(current) + len(unit) > max_chars:
                pieces.append(current)
                current = ""
            current += unit
    if current:
        pieces.append(current)
    return pieces


def _split_long(para: str, max_chars: int) -> list[str]:
    lines = re.split(r"(?<=\n)", para)
    out: list[str] = []
    for line in lines:
        while len(line) > max_chars:
            out.append(line[:max_chars])
            line = line[max_chars:]
        out.append(line)
    return out
