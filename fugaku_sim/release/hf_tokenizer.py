"""``tokenizer.json`` and ``tokenizer_config.json``: the sentencepiece model as a Hugging Face
fast tokenizer that gives the same ids.

``AutoTokenizer.from_pretrained(release)`` reads ``tokenizer_config.json``
(``tokenizer_class: PreTrainedTokenizerFast``), then builds the tokenizer from
``tokenizer.json`` alone (the ``tokenizers`` serialisation): it never opens
``tokenizer.model``, so neither sentencepiece nor protobuf is involved in loading. The JSON is
written here from the model file itself (:mod:`fugaku_sim.data.spm_model`), so building a
release needs neither transformers nor tokenizers.

How each sentencepiece step is expressed (sentencepiece v0.2 ``normalizer.cc``,
``unigram_model.cc``, ``bpe_model.cc``, ``sentencepiece_processor.cc``; tokenizers' JSON
schema as ``Tokenizer.to_str()`` writes it):

- normaliser: ``Precompiled`` (the model's charsmap, empty for the ``identity`` rule),
  ``remove_extra_whitespaces`` as regex replacements, spaces to ``▁``, then ``Prepend("▁")``
  (``add_dummy_prefix``; sentencepiece adds it even before a leading space, which
  ``Metaspace`` would not);
- model: ``Unigram`` over the whole normalised text (no pre-splitting: pieces of several
  ``▁``, such as code indentation, must stay possible), same pieces, ids and float32 scores,
  byte fallback; or ``BPE`` with merges ranked by piece score, as sentencepiece merges;
- reserved pieces: sentencepiece never matches the text of a control, unknown, unused or
  byte piece (``<s>``, ``<0x0A>``); tokenizers' Unigram matches every vocabulary entry. A
  ``Split`` pre-tokeniser cuts each such text at a point no ordinary piece can span (checked
  here against the vocabulary), which leaves every other segmentation untouched;
- special tokens: control and unknown pieces are special added tokens; ``split_special_tokens``
  makes transformers encode their text as text, as sentencepiece does. No BOS or EOS is
  added (the data stage appends EOD itself);
- decoder: ``▁`` to space, bytes fallen back to, fused, one leading space stripped.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from fugaku_sim.data.spm_model import PieceType, SpmModel
from fugaku_sim.errors import UserError

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
HF_TOKENIZER_FILES = (TOKENIZER_JSON, TOKENIZER_CONFIG)
SPACE_SYMBOL = "\u2581"  # sentencepiece's kSpaceSymbol, LOWER ONE EIGHTH BLOCK
RESERVED_TYPES = (PieceType.CONTROL, PieceType.UNKNOWN, PieceType.UNUSED, PieceType.BYTE)


def _piece_spans(piece: str, reserved: str, cut: int, j: int) -> bool:
    """Whether ``piece``, placed so that its own boundary ``j`` falls on the boundary ``cut``
    of an occurrence of ``reserved``, agrees with every character of it that it covers."""
    start = cut - j
    lo, hi = max(0, start), min(len(reserved), start + len(piece))
    return reserved[lo:hi] == piece[lo - start:hi - start]


def reserved_cuts(m: SpmModel) -> tuple[dict[str, int], list[str]]:
    """Where to cut the text of each reserved piece so that no normal piece spans the cut.

    A cut at character ``k`` of an occurrence of reserved text ``R`` removes from the search
    exactly the segmentations with a piece over that point; when no normal piece can
    lie over it whatever surrounds ``R``, every segmentation sentencepiece could choose
    survives and the reserved piece itself cannot be chosen. Without byte fallback a cut
    must also not fall between two characters that are both unknown (sentencepiece writes a
    run of unknown characters as one ``<unk>``). Returns ``{R: k}`` and the reserved texts
    that have no such point (their literal text may encode differently).
    """
    texts = [p.text for p in m.pieces if p.type in RESERVED_TYPES]
    by_bigram: dict[str, list[tuple[str, int]]] = defaultdict(list)
    singles: set[str] = set()
    for p in m.pieces:
        if p.type not in RESERVED_TYPES:
            singles.update(p.text if len(p.text) == 1 else "")
            for j in range(1, len(p.text)):
                by_bigram[p.text[j - 1:j + 1]].append((p.text, j))

    def safe_at(text: str, k: int) -> bool:
        if not m.byte_fallback and text[k - 1] not in singles and text[k] not in singles:
            return False
        return not any(_piece_spans(piece, text, k, j)
                       for piece, j in by_bigram.get(text[k - 1:k + 1], []))

    cuts: dict[str, int] = {}
    uncut: list[str] = []
    for text in texts:
        nested = any(text in other for other in texts if other != text)
        safe = [k for k in range(1, len(text)) if safe_at(text, k)]
        if safe and not nested:
            cuts[text] = safe[0]
        else:
            uncut.append(text)
    return cuts, uncut


def _literal(text: str) -> str:
    r"""``text`` as an Oniguruma (tokenizers' regex engine) literal: letters and digits as
    they are, every other character as ``\x{hex}``."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def guard_pattern(cuts: dict[str, int]) -> str:
    """The ``Split`` regex whose matches end at the cuts: ``R[:k]`` followed by ``R[k:]``,
    grouped by ``R[:k]``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for text, k in cuts.items():
        groups[text[:k]].append(text[k:])
    return "|".join(f"{_literal(head)}(?={'|'.join(_literal(t) for t in tails)})"
                    for head, tails in groups.items())


def _replace(pattern: str, content: str, regex: bool = False) -> dict[str, Any]:
    return {"type": "Replace", "pattern": {"Regex" if regex else "String": pattern},
            "content": content}


def normalizer_json(m: SpmModel) -> dict[str, Any]:
    """sentencepiece's ``Normalizer::Normalize`` as a tokenizers normaliser sequence."""
    space = SPACE_SYMBOL if m.escape_whitespaces else " "
    steps: list[dict[str, Any]] = []
    if m.precompiled_charsmap:
        steps.append({"type": "Precompiled", "precompiled_charsmap":
                      base64.b64encode(m.precompiled_charsmap).decode("ascii")})
    if m.remove_extra_whitespaces:  # only ' ' counts, as in sentencepiece
        steps += [_replace(r"\A +", "", regex=True), _replace(" {2,}", " ", regex=True)]
    if m.escape_whitespaces:
        steps.append(_replace(" ", SPACE_SYMBOL))
    if m.remove_extra_whitespaces:  # sentencepiece trims after escaping: a trailing ▁ too
        steps.append(_replace(f"{_literal(space)}+\\z", "", regex=True))
    if m.add_dummy_prefix:  # not on empty text, as sentencepiece
        steps.append({"type": "Prepend", "prepend": space})
    return {"type": "Sequence", "normalizers": steps}


def model_json(m: SpmModel) -> dict[str, Any]:
    """The ``Unigram`` or ``BPE`` model with sentencepiece's ids."""
    if m.model_type == "unigram":
        return {"type": "Unigram", "unk_id": m.unk_id,
                "vocab": [[p.text, p.score] for p in m.pieces], "byte_fallback": m.byte_fallback}
    vocab = {p.text: i for i, p in enumerate(m.pieces)}
    normal = {p.text: (p.score, i) for i, p in enumerate(m.pieces) if p.type == PieceType.NORMAL}
    # sentencepiece BPE merges the adjacent pair whose union has the highest score (ties: the
    # leftmost); tokenizers merges the lowest-ranked pair, so rank by score, then id
    ranked = sorted((-score, i, t[:k], t[k:]) for t, (score, i) in normal.items()
                    for k in range(1, len(t)) if t[:k] in normal and t[k:] in normal)
    return {"type": "BPE", "dropout": None, "unk_token": m.pieces[m.unk_id].text,
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
            "byte_fallback": m.byte_fallback, "ignore_merges": False, "vocab": vocab,
            "merges": [[left, right] for _, _, left, right in ranked]}


def decoder_json(m: SpmModel) -> dict[str, Any]:
    """sentencepiece's ``Decode``: ``▁`` to space, bytes, and the dummy prefix removed."""
    steps: list[dict[str, Any]] = []
    if m.escape_whitespaces:
        steps.append(_replace(SPACE_SYMBOL, " "))
    if m.byte_fallback:
        steps.append({"type": "ByteFallback"})
    steps.append({"type": "Fuse"})  # Strip works per token: fuse first to strip the text's start
    if m.add_dummy_prefix:
        steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {"type": "Sequence", "decoders": steps}


def check_supported(m: SpmModel, source: str) -> None:
    """Refuse sentencepiece options this conversion does not reproduce exactly.

    Raises:
        UserError: a word or char model, user-defined or unused pieces (sentencepiece gives
            them scores of its own), or whitespace as a suffix.
    """
    why = ""
    if m.model_type not in ("unigram", "bpe"):
        why = f"model type {m.model_type} (unigram and bpe only)"
    elif m.ids_of(PieceType.USER_DEFINED) or m.ids_of(PieceType.UNUSED):
        why = "user-defined or unused pieces"
    elif m.treat_whitespace_as_suffix:
        why = "treat_whitespace_as_suffix"
    elif not 0 <= m.unk_id < len(m.pieces) or m.pieces[m.unk_id].type != PieceType.UNKNOWN:
        why = f"unknown id {m.unk_id} is not the <unk> piece"
    if why:
        raise UserError(f"{source}: no Hugging Face tokenizer.json can be written for "
                        f"{why}; train the tokenizer with the data stage's settings")


def tokenizer_json(m: SpmModel, source: str) -> tuple[dict[str, Any], list[str]]:
    """The ``tokenizer.json`` object and the reserved texts left unguarded (empty when every
    text encodes as sentencepiece encodes it).

    Raises:
        UserError: a sentencepiece option this conversion does not reproduce.
    """
    check_supported(m, source)
    pre_tokenizer = None
    uncut: list[str] = []
    if m.model_type == "unigram":
        cuts, uncut = reserved_cuts(m)
        if cuts:
            pre_tokenizer = {"type": "Split", "pattern": {"Regex": guard_pattern(cuts)},
                             "behavior": "MergedWithPrevious", "invert": False}
    added = [{"id": i, "content": p.text, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, p in enumerate(m.pieces) if p.type in (PieceType.CONTROL, PieceType.UNKNOWN)]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": normalizer_json(m), "pre_tokenizer": pre_tokenizer,
            "post_processor": None, "decoder": decoder_json(m), "model": model_json(m)}, uncut


def tokenizer_config(m: SpmModel, model_max_length: int) -> dict[str, Any]:
    """``tokenizer_config.json``: the fast class, special tokens, no BOS/EOS added, special
    tokens' text encoded as text, decoding without clean-up (exact round trips).

    With no padding piece, padding uses EOD (as ``generation_config.json`` does): the model
    saw EOD between documents, and padded positions are masked anyway.
    """
    def piece(i: int) -> str | None:
        return m.pieces[i].text if 0 <= i < len(m.pieces) else None

    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
            "bos_token": piece(m.bos_id), "eos_token": piece(m.eos_id),
            "unk_token": piece(m.unk_id), "pad_token": piece(m.pad_id) or piece(m.eos_id),
            "add_bos_token": False, "add_eos_token": False, "split_special_tokens": True,
            "clean_up_tokenization_spaces": False}
