"""A synthetic-token data directory for timing runs.

A step's time does not depend on the token values, so validation runs train on uniformly
random tokens instead of the data stage's corpus: ``shards/synthetic_{train,valid}`` in
Megatron's indexed format and a blend file (:mod:`fugaku_sim.data.blend`). No tokenizer is
written (training does not need one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fugaku_sim.data.blend import BLEND_FILE, Blend, BlendEntry, read_blend, write_blend
from fugaku_sim.data.indexed import IndexedDatasetWriter, best_fitting_dtype
from fugaku_sim.errors import UserError

DOC_TOKENS = 1024  # tokens per synthetic document


def _reusable(out_dir: Path, vocab: int, tokens: int) -> bool:
    """Whether ``out_dir`` already holds at least ``tokens`` per split below a vocabulary of
    at least ``vocab`` (a directory this module wrote; anything else is rewritten)."""
    if not (out_dir / BLEND_FILE).is_file():
        return False
    try:
        old = read_blend(out_dir)
    except UserError:  # a corrupt or foreign blend: write the data again
        return False
    return old.vocab_size >= vocab and (old.synthetic_tokens or 0) >= tokens


def write_synthetic_data(out_dir: Path, vocab: int, tokens: int, seed: int = 0) -> Path:
    """Write ``tokens`` random ids below ``vocab`` (per split) under ``out_dir``; returns it.

    Token ``vocab - 1`` ends every document (the end-of-document id). Reuses a directory
    that already holds at least as many tokens of a vocabulary at least as large.
    """
    if _reusable(out_dir, vocab, tokens):
        return out_dir
    (out_dir / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dtype = best_fitting_dtype(vocab)
    splits = {}
    for split in ("train", "valid"):
        prefix = f"shards/synthetic_{split}"
        with IndexedDatasetWriter(out_dir / prefix, dtype) as writer:
            for _ in range(max(1, -(-tokens // DOC_TOKENS))):
                doc = rng.integers(0, vocab - 1, DOC_TOKENS, dtype=np.int64)
                doc[-1] = vocab - 1
                writer.add_document(doc)
        splits[split] = (BlendEntry(domain="synthetic", prefix=prefix, weight=1.0,
                                    tokens=writer.num_tokens),)
    write_blend(out_dir, Blend(tokenizer=None, eod_id=vocab - 1, vocab_size=vocab,
                               synthetic_tokens=tokens, splits=splits))
    return out_dir
