"""Stage 6, mix: realise the target shares of training tokens by repeating or subsampling
whole documents, and write the shards and blend files the trainer (and Megatron) read.

Plan: with ``A_d`` training tokens available in domain ``d`` and target share ``s_d``, the
total is ``T = min_d A_d * max_epochs / s_d`` (the scarcest domain, repeated at most
``max_epochs`` times, sets the size) and domain ``d`` gets ``s_d * T`` tokens: whole epochs of
its documents plus a seeded random subset for the remainder. Valid and test shards are copied
unchanged (evaluating on repeated documents tells nothing); their blend weights are the target
shares, renormalised over domains that have evaluation documents.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.data.blend import Blend, BlendEntry, write_blend
from fugaku_sim.data.config import DOMAINS, SPLITS, DataConfig
from fugaku_sim.data.indexed import IndexedDataset, IndexedDatasetWriter
from fugaku_sim.data.records import iter_texts
from fugaku_sim.errors import UserError
from fugaku_sim.io import atomic_dir, atomic_path, read_json


def plan_tokens(available: dict[str, int], shares: dict[str, float],
                max_epochs: float) -> dict[str, float]:
    """Target training tokens per domain (see the module docstring).

    Raises:
        UserError: a domain with a positive share has no training tokens.
    """
    empty = [d for d, s in shares.items() if s > 0 and available.get(d, 0) == 0]
    if empty:
        raise UserError(f"data.mixture: {', '.join(empty)} has a share but no training text; "
                        "add a source for it or set its share to 0")
    total = min(available[d] * max_epochs / s for d, s in shares.items() if s > 0)
    return {d: s * total for d, s in shares.items()}


def select_documents(sizes: np.ndarray, target_tokens: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Document indices (repeats allowed) whose sizes sum as close as whole documents allow
    to ``target_tokens``: full epochs in order, then a random subset for the remainder."""
    total = int(sizes.sum())
    if total == 0 or target_tokens <= 0:
        return np.zeros(0, dtype=np.int64)
    epochs = int(target_tokens // total)
    rest = target_tokens - epochs * total
    order = rng.permutation(len(sizes))
    cum = np.cumsum(sizes[order].astype(np.int64))
    k = int(np.searchsorted(cum, rest))  # first prefix reaching ``rest``
    if k < len(order):
        before = int(cum[k - 1]) if k > 0 else 0
        k += int(cum[k] - rest < rest - before)  # include the crossing document if closer
    extra = np.sort(order[:k])
    full = np.tile(np.arange(len(sizes), dtype=np.int64), epochs)
    return np.concatenate([full, extra.astype(np.int64)])


def write_train_shards(tok_dir: Path, shard_dir: Path, cfg: DataConfig) -> dict[str, Any]:
    """Write ``<domain>_train`` shards realising the mixture; return the mixture table."""
    data = {d: IndexedDataset(tok_dir / f"{d}_train") for d in DOMAINS}
    available = {d: ds.num_tokens for d, ds in data.items()}
    shares = cfg.mixture.shares()
    targets = plan_tokens(available, shares, cfg.mixture.max_epochs)
    table: dict[str, Any] = {}
    for d, ds in data.items():
        rng = np.random.default_rng([cfg.seed, DOMAINS.index(d)])
        chosen = select_documents(np.asarray(ds.sizes), targets[d], rng)
        with IndexedDatasetWriter(shard_dir / f"{d}_train", ds.dtype) as writer:
            for i in chosen:
                writer.add_document(ds[int(i)])
        table[d] = {"target_share": shares[d], "available_tokens": available[d],
                    "target_tokens": round(targets[d]), "tokens": writer.num_tokens,
                    "documents": len(chosen),
                    "epochs": round(writer.num_tokens / available[d], 4) if available[d] else 0}
    total = sum(row["tokens"] for row in table.values())
    for row in table.values():
        row["achieved_share"] = row["tokens"] / total if total else 0.0
    return {"total_train_tokens": total, "max_epochs": cfg.mixture.max_epochs, "domains": table}


def blend_entries(shard_dir: Path, split: str, cfg: DataConfig) -> list[BlendEntry]:
    """Blend entries of one split: train weights are token fractions (the mixture realised
    in the shards); valid/test weights are target shares over domains with documents."""
    shares = cfg.mixture.shares()
    rows: list[tuple[str, int, float]] = []
    for d in DOMAINS:
        ds = IndexedDataset(shard_dir / f"{d}_{split}")
        if ds.num_tokens > 0 and shares[d] > 0:
            rows.append((d, ds.num_tokens, float(ds.num_tokens if split == "train"
                                                 else shares[d])))
    norm = sum(weight for _, _, weight in rows)
    return [BlendEntry(domain=d, prefix=f"{shard_dir.name}/{d}_{split}", weight=weight / norm,
                       tokens=tokens) for d, tokens, weight in rows]


def make_blend(out_dir: Path, cfg: DataConfig, vocab_size: int, eod_id: int) -> Blend:
    """The blend of the shards under ``out_dir/shards`` (prefixes relative to ``out_dir``)."""
    splits = {s: tuple(blend_entries(out_dir / "shards", s, cfg)) for s in SPLITS}
    return Blend(tokenizer="tokenizer.model", eod_id=eod_id, vocab_size=vocab_size,
                 splits=splits)


def write_heldout(dedup_dir: Path, heldout_dir: Path) -> dict[str, int]:
    """``heldout/<domain>.jsonl``: ``{"text": ...}`` per test-split document."""
    counts = {}
    for d in DOMAINS:
        n = 0
        with open(heldout_dir / f"{d}.jsonl", "w", encoding="utf-8") as out:
            for text in iter_texts(dedup_dir / f"{d}_test.jsonl", "dedup"):
                out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                n += 1
        counts[d] = n
    return counts


def run_mix(cfg: DataConfig, out_dir: Path) -> dict[str, Any]:
    """Write shards, blend files, held-out text and ``maths_eval.jsonl``; return the report.

    Raises:
        UserError: earlier stages missing, or a domain with a share has no text.
    """
    tok_report = read_json(out_dir / "tokenized" / "report.json", "tokenize")
    tokenizer = read_json(out_dir / "tokenizer" / "report.json", "tokenizer")
    with atomic_dir(out_dir / "shards") as tmp:
        mixture = write_train_shards(out_dir / "tokenized", tmp, cfg)
        for d in DOMAINS:
            for split in ("valid", "test"):
                for suffix in (".bin", ".idx"):
                    shutil.copyfile(out_dir / "tokenized" / f"{d}_{split}{suffix}",
                                    tmp / f"{d}_{split}{suffix}")
    with atomic_dir(out_dir / "heldout") as tmp:
        heldout = write_heldout(out_dir / "dedup", tmp)
    with atomic_path(out_dir / "maths_eval.jsonl") as tmp_eval:
        shutil.copyfile(out_dir / "raw" / "maths_eval.jsonl", tmp_eval)
    blend = make_blend(out_dir, cfg, int(tokenizer["vocab_size"]), int(tok_report["eod_id"]))
    write_blend(out_dir, blend)
    ja = mixture["domains"]["ja"]
    if math.fabs(ja["achieved_share"] - ja["target_share"]) > 0.02:
        mixture["warning"] = "achieved ja share is more than 2 points from target"
    return {"mixture": mixture, "heldout_documents": heldout,
            "blend": blend.model_dump(mode="json", exclude_none=True)}
