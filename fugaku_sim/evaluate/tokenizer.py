"""The data stage's sentencepiece tokenizer, loaded for evaluation and release.

Ids (data stage contract): ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2 = end of document (EOD),
byte fallback on. Text is encoded without BOS/EOS; callers add EOD where a document ends,
as the data stage does before writing shards.

How to load a release's tokenizer::

    from fugaku_sim.evaluate.tokenizer import Tokenizer
    tok = Tokenizer("results/release/NAME/tokenizer.model")
    ids = tok.encode("富岳で学習した言語モデル")
    text = tok.decode(ids)

or with sentencepiece alone: ``sentencepiece.SentencePieceProcessor(model_file=...)``, or
with transformers: ``AutoTokenizer.from_pretrained("results/release/NAME")`` (the release's
``tokenizer.json``, same ids).
"""

from __future__ import annotations

from pathlib import Path

from fugaku_sim.errors import UserError


class Tokenizer:
    """A sentencepiece model with the end-of-document id the data stage uses.

    Raises:
        UserError: the model file is missing or not a sentencepiece model.
    """

    def __init__(self, path: str | Path, eod_id: int | None = None) -> None:
        import sentencepiece as spm

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: tokenizer model not found")
        try:
            self._sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (RuntimeError, OSError) as exc:
            first = (str(exc).strip().splitlines() or ["unreadable"])[0]
            raise UserError(f"{self.path}: not a sentencepiece model ({first})") from None
        self.vocab_size = int(self._sp.get_piece_size())
        self.eod_id = int(self._sp.eos_id()) if eod_id is None else int(eod_id)
        self.bos_id = int(self._sp.bos_id())
        if not 0 <= self.eod_id < self.vocab_size:
            raise UserError(f"{self.path}: end-of-document id {self.eod_id} outside the "
                            f"vocabulary of {self.vocab_size}")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS, no EOD)."""
        return [int(i) for i in self._sp.encode(text)]

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``; control ids (EOD, BOS) decode to nothing."""
        return str(self._sp.decode([int(i) for i in ids]))
