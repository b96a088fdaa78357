"""A synthetic-token data directory for timing runs.

A step's time does not depend on the token values, so validation runs train on uniformly
random tokens instead of the data stage's corpus: ``shards/synthetic_{train,valid}`` in
Megatron's indexed format and a ``blend.json`` of the data stage's form. No tokenizer is
written (training does not need one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fugaku_sim.data.indexed import IndexedDatasetWriter, best_fitting_dtype
from fugaku_sim.io import atomic_path

DOC_TOKENS = 1024  # tokens per synthetic document


def write_synthetic_data(out_dir: Path, vocab: int, tokens: int, seed: int = 0) -> Path:
    """Write ``tokens`` random ids below ``vocab`` (per split) under ``out_dir``; returns it.

    Token ``vocab - 1`` ends every document (the end-of-document id). Reuses a directory
    that already holds at least as many tokens of a vocabulary at least as large.
    """
    blend_path = out_dir / "blend.json"
    if blend_path.is_file():
        old = json.loads(blend_path.read_text(encoding="utf-8"))
        if old.get("vocab_size", 0) >= vocab and old.get("synthetic_tokens", 0) >= tokens:
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
        splits[split] = [{"domain": "synthetic", "prefix": prefix, "weight": 1.0,
                          "tokens": writer.num_tokens}]
    blend = {"tokenizer": None, "eod_id": vocab - 1, "vocab_size": vocab,
             "synthetic_tokens": tokens, "splits": splits}
    with atomic_path(blend_path) as tmp:
        tmp.write_text(json.dumps(blend, indent=1) + "\n", encoding="utf-8")
    return out_dir
