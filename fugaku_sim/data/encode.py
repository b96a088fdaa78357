"""Stage 5, tokenize: encode ``dedup/<domain>_<split>.jsonl`` into indexed datasets
``tokenized/<domain>_<split>.bin/.idx`` (one document per sequence, ``</s>`` appended).

Parallel over files: every file is cut at line starts into parts of about ``PART_BYTES``;
a process pool encodes the parts, streaming (one document in memory at a time, tokens written
as they come), into part datasets that are then concatenated in order. Memory does not grow
with the corpus beyond one int32 per document for the index.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.data.collect import Progress, _no_progress
from fugaku_sim.data.config import DOMAINS, SPLITS, DataConfig
from fugaku_sim.data.indexed import IndexedDatasetWriter, best_fitting_dtype
from fugaku_sim.data.records import parse_record, stage_report
from fugaku_sim.data.tokenizer import EOS_ID
from fugaku_sim.io import atomic_dir, write_json

PART_BYTES = 4 << 20


@dataclass(frozen=True)
class Part:
    """Lines of ``path`` starting in ``[start, end)`` (byte offsets at line starts)."""

    path: str
    start: int
    end: int
    out_prefix: str
    model: str
    dtype: str


def cut_parts(path: Path, part_bytes: int = PART_BYTES) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` covering ``path``, each starting at a line start."""
    size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as f:
        while bounds[-1] + part_bytes < size:
            f.seek(bounds[-1] + part_bytes)
            f.readline()
            if f.tell() >= size:
                break
            bounds.append(f.tell())
    bounds.append(size)
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [(0, 0)]


def encode_part(part: Part) -> dict[str, Any]:
    """Encode one part into ``part.out_prefix`` (runs in a worker); return its counts.

    ``encode_seconds`` is the time spent inside sentencepiece alone, for the benchmark.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=part.model)
    by_source: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    encode_s = 0.0
    with IndexedDatasetWriter(part.out_prefix, np.dtype(part.dtype)) as writer, \
            open(part.path, "rb") as f:
        f.seek(part.start)
        while f.tell() < part.end:
            at = f.tell()
            line = f.readline()
            if not line:
                break
            rec = parse_record(line, f"{part.path} (the line at byte {at})", "dedup")
            t0 = time.perf_counter()
            ids = sp.encode(rec["text"])
            encode_s += time.perf_counter() - t0
            ids.append(EOS_ID)
            writer.add_document(np.asarray(ids, dtype=part.dtype))
            by_source[rec["source"]] += len(ids)
            stats["documents"] += 1
            stats["tokens"] += len(ids)
            stats["characters"] += len(rec["text"])
    return {**stats, "encode_seconds": encode_s, "tokens_by_source": dict(by_source)}


def plan_parts(dedup_dir: Path, parts_dir: Path, model: Path, dtype: str
               ) -> dict[str, list[Part]]:
    """Parts per ``<domain>_<split>`` name, in file order."""
    plan: dict[str, list[Part]] = {}
    for domain in DOMAINS:
        for split in SPLITS:
            name = f"{domain}_{split}"
            path = dedup_dir / f"{name}.jsonl"
            plan[name] = [Part(str(path), a, b, str(parts_dir / f"{name}.{k:04d}"),
                               str(model), dtype)
                          for k, (a, b) in enumerate(cut_parts(path))]
    return plan


def run_tokenize(cfg: DataConfig, out_dir: Path, progress: Progress = _no_progress) -> dict:
    """Write ``out_dir/tokenized`` (all or nothing) and return its report.

    Raises:
        UserError: the dedup output or the tokenizer is missing (run those stages first).
    """
    from fugaku_sim.errors import UserError
    from fugaku_sim.evaluate.tokenizer import Tokenizer

    stage_report(out_dir, "dedup", "dedup")
    tok = stage_report(out_dir, "tokenizer", "tokenizer", ("vocab_size",))
    model = out_dir / "tokenizer.model"
    if not model.is_file():
        raise UserError(f"{model}: not found; run `fugaku-sim data tokenizer` first")
    Tokenizer(model)  # a corrupt model: one line here, not a traceback from each worker
    vocab = tok["vocab_size"]
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        raise UserError(f"{out_dir / 'tokenizer' / 'report.json'}: vocab_size {vocab!r} is not "
                        "a count; rerun `fugaku-sim data tokenizer`")
    dtype = np.dtype(best_fitting_dtype(vocab)).name
    started = time.perf_counter()
    with atomic_dir(out_dir / "tokenized") as tmp:
        (tmp / "parts").mkdir()
        plan = plan_parts(out_dir / "dedup", tmp / "parts", model, dtype)
        tasks = [p for parts in plan.values() for p in parts]
        tasks.sort(key=lambda p: p.end - p.start, reverse=True)  # big parts first
        results: dict[str, dict[str, Any]] = {}
        with multiprocessing.Pool(cfg.workers) as pool:
            for n, (part, res) in enumerate(
                    zip(tasks, pool.imap(encode_part, tasks), strict=True), 1):
                results[part.out_prefix] = res
                progress("tokenize", n, len(tasks))
        report = _merge_parts(plan, results, tmp)
        shutil.rmtree(tmp / "parts")
        report.update(dtype=dtype, eod_id=EOS_ID, wall_seconds=time.perf_counter() - started,
                      workers=cfg.workers, parts=len(tasks))
        write_json(tmp / "report.json", report)
    return report


def _merge_parts(plan: dict[str, list[Part]], results: dict[str, dict[str, Any]],
                 tmp: Path) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    by_source: Counter[str] = Counter()
    encode_s = 0.0
    for name, parts in plan.items():
        writer = IndexedDatasetWriter(tmp / name, np.dtype(parts[0].dtype))
        stats: Counter[str] = Counter()
        for part in parts:
            writer.add_dataset(part.out_prefix)
            res = results[part.out_prefix]
            for key in ("documents", "tokens", "characters"):
                stats[key] += res.get(key, 0)
            by_source.update(res["tokens_by_source"])
            encode_s += res["encode_seconds"]
            for suffix in (".bin", ".idx"):
                os.unlink(part.out_prefix + suffix)
        writer.finalize()
        datasets[name] = dict(stats)
    return {"datasets": datasets, "tokens_by_source": dict(by_source),
            "sentencepiece_encode_seconds": encode_s}
