"""Stage 2, clean: normalise, strip boilerplate, cut long texts, filter, route by language.

Reads ``raw/<source>.jsonl``, writes ``clean/<source>.jsonl`` and ``clean/report.json``.
Every dropped piece is counted under a reason (with its characters and one example id):

``too_short``      fewer than ``clean.min_document_chars`` characters after cleaning
``few_letters``    a prose (ja/en) piece whose letters are under ``clean.min_letter_share``
``langid_not_ja``  a piece from a ja source that the language identifier does not call ja
``langid_not_en``  likewise for en
``langid_und``     an ``auto`` piece that is neither ja nor en
"""

from __future__ import annotations

import json
import multiprocessing
import re
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from fugaku_sim.data.collect import Progress, _no_progress
from fugaku_sim.data.config import CleanConfig, DataConfig
from fugaku_sim.data.langid import identify_language
from fugaku_sim.data.normalize import normalize_text, split_document, strip_gutenberg
from fugaku_sim.data.records import RAW_DOMAINS, parse_record, stage_report
from fugaku_sim.io import atomic_dir, write_json

_LETTER = re.compile(r"[^\W\d_]")

Cleaned = tuple[list[dict[str, str]], Counter[str], list[tuple[str, int, str]]]


def _route(piece: str, domain: str, cfg: CleanConfig) -> tuple[str | None, str]:
    """The domain a piece goes to, or ``None`` and the drop reason."""
    if domain in ("code", "maths"):
        return domain, ""
    guess = identify_language(piece, cfg.min_ja_letter_share, cfg.max_ja_letter_share_en)
    if domain == "auto":
        return (guess.language, "") if guess.language != "und" else (None, "langid_und")
    if guess.language != domain:
        return None, f"langid_not_{domain}"
    return domain, ""


def clean_record(record: dict[str, str], cfg: CleanConfig) -> Cleaned:
    """Clean one raw document into zero or more pieces; return pieces, counts and drops.

    Drops are ``(reason, characters, piece id)``.
    """
    counts: Counter[str] = Counter()
    text = normalize_text(record["text"], counts)
    text, removed = strip_gutenberg(text)
    counts["gutenberg_chars_removed"] += removed
    counts["gutenberg_texts_stripped"] += int(removed > 0)
    kept: list[dict[str, str]] = []
    drops: list[tuple[str, int, str]] = []
    for k, piece in enumerate(split_document(text, cfg.max_document_chars)):
        piece = piece.strip("\n") + "\n"
        piece_id = f"{record['id']}#{k}"
        domain, reason = _route(piece, record["domain"], cfg)
        if len(piece.strip()) < cfg.min_document_chars:
            domain, reason = None, "too_short"
        elif domain in ("ja", "en"):
            letters = len(_LETTER.findall(piece))
            if letters < cfg.min_letter_share * len(piece):
                domain, reason = None, "few_letters"
        if domain is None:
            drops.append((reason, len(piece), piece_id))
            continue
        kept.append({"id": piece_id, "source": record["source"], "domain": domain,
                     "text": piece})
    return kept, counts, drops


def _clean_line(numbered: tuple[int, bytes], cfg: CleanConfig, path: str) -> Cleaned:
    number, line = numbered
    return clean_record(parse_record(line, f"{path}:{number}", "collect", RAW_DOMAINS), cfg)


def iter_cleaned(path: Path, cfg: CleanConfig, workers: int) -> Iterator[Cleaned]:
    """Clean the records of one raw file in order, in a process pool when ``workers > 1``.

    Raises:
        UserError: a line that is not a raw record (named by file and line).
    """
    clean = partial(_clean_line, cfg=cfg, path=str(path))
    with open(path, "rb") as f:
        lines = enumerate(f, 1)
        if workers <= 1:
            yield from map(clean, lines)
            return
        with multiprocessing.Pool(workers) as pool:
            yield from pool.imap(clean, lines, chunksize=8)


def clean_source(path: Path, out_path: Path, cfg: DataConfig,
                 progress: Progress = _no_progress) -> dict[str, Any]:
    """Clean one source file; return its report entry (counts and drops by reason)."""
    counts: Counter[str] = Counter()
    drops: dict[str, dict[str, Any]] = {}
    by_domain: Counter[str] = Counter()
    with open(out_path, "w", encoding="utf-8") as out:
        for n, (kept, c, dropped) in enumerate(iter_cleaned(path, cfg.clean, cfg.workers), 1):
            progress(path.stem, n, 0)
            counts.update(c)
            counts["documents_in"] += 1
            for reason, chars, piece_id in dropped:
                entry = drops.setdefault(reason, {"documents": 0, "characters": 0,
                                                  "example": piece_id})
                entry["documents"] += 1
                entry["characters"] += chars
            for rec in kept:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                counts["documents_out"] += 1
                counts["characters_out"] += len(rec["text"])
                by_domain[rec["domain"]] += 1
    return {**{k: int(v) for k, v in sorted(counts.items())}, "dropped": drops,
            "documents_by_domain": dict(by_domain)}


def run_clean(cfg: DataConfig, out_dir: Path, progress: Progress = _no_progress) -> dict:
    """Write ``out_dir/clean`` from ``out_dir/raw`` (all or nothing); return the report.

    Raises:
        UserError: ``raw/`` is missing (run collect first), or a source is left empty.
    """
    from fugaku_sim.errors import UserError

    raw_report = stage_report(out_dir, "raw", "collect", ("sources",))
    with atomic_dir(out_dir / "clean") as tmp:
        report: dict[str, Any] = {"sources": {}}
        for name in raw_report["sources"]:
            entry = clean_source(out_dir / "raw" / f"{name}.jsonl", tmp / f"{name}.jsonl",
                                 cfg, progress)
            if entry.get("documents_out", 0) == 0:
                raise UserError(f"source {name}: every document was filtered out while "
                                f"cleaning ({entry['dropped']}); check its domain and text")
            report["sources"][name] = entry
        write_json(tmp / "report.json", report)
    return report
