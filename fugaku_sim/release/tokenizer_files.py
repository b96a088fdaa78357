"""A release's tokenizer files, written and checked: ``tokenizer.model`` (sentencepiece,
without the paths of the machine that trained it), ``tokenizer.json`` and
``tokenizer_config.json`` (Hugging Face, :mod:`fugaku_sim.release.hf_tokenizer`).

The check needs neither transformers nor tokenizers: the two JSON files must be exactly what
the release's ``tokenizer.model`` converts to. When the ``tokenizers`` library is installed
(it comes with transformers), ``tokenizer.json`` is also loaded and must give sentencepiece's
ids on :data:`PROBE_TEXTS` (and, when a release is built, on every held-out document).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fugaku_sim.data.spm_model import SpmModel, without_training_paths
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object, write_json
from fugaku_sim.release.hf_tokenizer import (
    HF_TOKENIZER_FILES,
    TOKENIZER_CONFIG,
    TOKENIZER_JSON,
    tokenizer_config,
    tokenizer_json,
)

SPM_FILE = "tokenizer.model"
TOKENIZER_FILES = (SPM_FILE, *HF_TOKENIZER_FILES)
# texts whose ids the release check compares: each domain, runs of spaces, newlines and tabs,
# the text of reserved pieces, characters that fall back to bytes, the empty text
PROBE_TEXTS = (
    "富岳で学習した言語モデルは日本語の文章を生成します。", "東京 の 町\u3000と　山",
    "The quick brown fox jumps over the lazy dog.", "  leading and trailing spaces  ",
    "def f(x):\n\treturn x * 2  # doubled\n\n        pass\n", "12 + 30 = 42\n7 * 6 = 42\n",
    "<s>tag</s> <unk> <0x0A> <pad> \u2581x", "😀 \U0001F9EA é ñ", "")


def expected_files(m: SpmModel, source: str, model_max_length: int
                   ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{file name: JSON object}`` of the two Hugging Face files for ``m``, and the reserved
    texts left unguarded (see :func:`~fugaku_sim.release.hf_tokenizer.reserved_cuts`).

    Raises:
        UserError: the model uses an option the conversion refuses.
    """
    body, uncut = tokenizer_json(m, source)
    return {TOKENIZER_JSON: body, TOKENIZER_CONFIG: tokenizer_config(m, model_max_length)}, uncut


def _read_model(path: Path) -> tuple[bytes, SpmModel]:
    from fugaku_sim.data.spm_model import read_model

    return path.read_bytes(), read_model(path)


def write_tokenizer_files(directory: Path, model_path: Path, model_max_length: int) -> list[str]:
    """Write the three tokenizer files into ``directory``; return notes (reserved texts whose
    literal text may encode differently from sentencepiece).

    Raises:
        UserError: the model is unreadable or uses an option the conversion refuses.
    """
    data, m = _read_model(model_path)
    files, uncut = expected_files(m, str(model_path), model_max_length)
    (directory / SPM_FILE).write_bytes(without_training_paths(data))
    for name, obj in files.items():
        write_json(directory / name, obj)
    if not uncut:
        return []
    shown = ", ".join(repr(t) for t in uncut[:4]) + (" ..." if len(uncut) > 4 else "")
    return [f"{TOKENIZER_JSON}: the literal text {shown} may encode differently from "
            "sentencepiece (ordinary pieces span every point inside it)"]


def compare_ids(directory: Path, texts: list[str] | tuple[str, ...]) -> str:
    """'' when ``tokenizer.json`` in ``directory``, loaded with the ``tokenizers`` library,
    encodes every text to the ids ``tokenizer.model`` gives and decodes them to the same
    text as sentencepiece; else a sentence naming the first text that differs.

    Raises:
        ModuleNotFoundError: tokenizers is not installed.
    """
    import sentencepiece as spm
    from tokenizers import Tokenizer as FastTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(directory / SPM_FILE))
    fast = FastTokenizer.from_file(str(directory / TOKENIZER_JSON))
    fast.encode_special_tokens = True  # what tokenizer_config's split_special_tokens sets
    for n, text in enumerate(texts):
        want = [int(i) for i in sp.encode(text)]
        got = fast.encode(text, add_special_tokens=False).ids
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                      min(len(got), len(want)))
            return (f"text {n} ({text[:24]!r}) encodes differently from sentencepiece from "
                    f"token {at} on ({got[at:at + 3]} vs {want[at:at + 3]})")
        # sentencepiece writes the unknown piece as ' ⁇ ', Hugging Face drops it as special:
        # decoded texts are compared where no piece is unknown (always, with byte fallback)
        if sp.unk_id() not in want and \
                fast.decode(got, skip_special_tokens=True) != sp.decode(want):
            return f"text {n} ({text[:24]!r}) decodes differently from sentencepiece"
    return ""


def tokenizers_installed() -> bool:
    """Whether the ``tokenizers`` library can be imported."""
    import importlib.util

    return importlib.util.find_spec("tokenizers") is not None


def check_tokenizer_files(directory: Path, model_max_length: int) -> None:
    """The Hugging Face files are what ``tokenizer.model`` converts to and, when tokenizers
    is installed, give sentencepiece's ids on the probe texts.

    Raises:
        UserError: a file missing, unreadable or different from the conversion, or ids that
            differ.
    """
    _, m = _read_model(directory / SPM_FILE)
    files, _ = expected_files(m, str(directory / SPM_FILE), model_max_length)
    for name, want in files.items():
        path = directory / name
        got = read_json_object(path, str(path), "rebuild the release")
        if got != want:
            diff = sorted(k for k in want.keys() | got.keys() if got.get(k) != want.get(k))
            raise UserError(f"{path}: differs from what {SPM_FILE} converts to (in "
                            f"{', '.join(diff)}); rebuild the release")
    if tokenizers_installed():
        problem = compare_ids(directory, PROBE_TEXTS)
        if problem:
            raise UserError(f"{directory / TOKENIZER_JSON}: {problem}")



def heldout_notes(directory: Path, texts: dict[str, list[str]]) -> list[str]:
    """Notes for the held-out documents (``{domain: texts}``) that ``tokenizer.json``
    encodes differently from ``tokenizer.model``; none when all agree or when tokenizers is
    not installed (the comparison needs it).

    Raises:
        UserError: ``tokenizer.model`` is not a sentencepiece model.
    """
    import math

    from fugaku_sim.data.tokenizer import SCORE_GRID_LOG2

    if not tokenizers_installed():
        return []
    notes = []
    for domain, docs in texts.items():
        problem = compare_ids(directory, docs)
        if problem:
            notes.append(f"{TOKENIZER_JSON}: held-out {domain} {problem}")
    _, m = _read_model(directory / SPM_FILE)
    if notes and not all(math.ldexp(p.score, SCORE_GRID_LOG2).is_integer() for p in m.pieces):
        notes.append(f"{SPM_FILE} predates score rounding (sentencepiece then adds scores "
                     "with float32 rounding); rerun `fugaku-sim data tokenizer` and the "
                     "stages after it for identical ids")
    return notes
