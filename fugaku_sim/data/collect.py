"""Stage 1, collect: load every source into ``raw/<source>.jsonl`` plus ``raw/report.json``.

Each line is ``{"id", "source", "domain", "text"}``. Items are loaded in a seeded order so
that a byte cap (``max_bytes``) takes a representative sample rather than the first files
alphabetically. The maths source also writes ``raw/maths_eval.jsonl`` (held-out problems).
"""

from __future__ import annotations

import json
import multiprocessing
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from fugaku_sim.data import maths
from fugaku_sim.data.config import DataConfig, MathsSource, Source, source_domain
from fugaku_sim.data.sources import Item, Loaded, load_item, plan_source
from fugaku_sim.errors import UserError
from fugaku_sim.io import atomic_dir, write_json

Progress = Callable[[str, int, int], None]  # (task, done, total)


def _no_progress(task: str, done: int, total: int) -> None:
    return None


def iter_loaded(items: list[Item], policy: str, workers: int) -> Iterator[Loaded]:
    """Load items in order, in a process pool when ``workers > 1`` (stops early on break)."""
    if workers <= 1 or len(items) < 4:
        for item in items:
            yield load_item(item, policy)
        return
    # A bounded window of submitted items instead of Pool.imap: the consumer stops early when a
    # source reaches its byte cap, and leaving Pool.imap early can hang in Pool.terminate. Here
    # an early stop cancels what has not started and waits for the few items running.
    load = partial(load_item, policy=policy)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending = deque(pool.submit(load, item) for item in items[: 4 * workers])
        following = iter(items[4 * workers :])
        try:
            while pending:
                loaded = pending.popleft().result()
                nxt = next(following, None)
                if nxt is not None:
                    pending.append(pool.submit(load, nxt))
                yield loaded
        finally:
            for future in pending:
                future.cancel()


def _write_doc(out: TextIO, doc_id: str, source: Source, text: str) -> None:
    record = {"id": doc_id, "source": source.name, "domain": source_domain(source), "text": text}
    out.write(json.dumps(record, ensure_ascii=False) + "\n")


def collect_source(source: Source, cfg: DataConfig, out: TextIO,
                   progress: Progress = _no_progress) -> dict[str, Any]:
    """Load one (non-maths) source into ``out``; return its report entry.

    Raises:
        UserError: the source fails to fetch, holds undecodable text under ``fail``, or
            yields no documents.
    """
    plan = plan_source(source)
    items = list(plan.items)
    random.Random(f"{cfg.seed}:{source.name}").shuffle(items)
    cap = cfg.byte_cap(source)
    stats: Counter[str] = Counter()
    skipped: Counter[str] = Counter(plan.notes)
    for loaded in iter_loaded(items, cfg.on_undecodable, cfg.workers):
        stats["items"] += 1
        progress(source.name, stats["items"], len(items))
        stats["undecodable_bytes"] += loaded.undecodable
        stats["man_header_footer_lines_dropped"] += loaded.boilerplate_lines
        if loaded.skipped:
            skipped[loaded.skipped] += 1
        for doc_id, text in loaded.docs:
            if not text.strip():
                skipped["empty document"] += 1
                continue
            _write_doc(out, doc_id, source, text)
            stats["documents"] += 1
            stats["characters"] += len(text)
            stats["bytes"] += len(text.encode("utf-8"))
            stats["documents_with_undecodable_bytes"] += int(loaded.undecodable > 0)
        if cap is not None and stats["bytes"] >= cap:
            progress(source.name, stats["items"], stats["items"])  # done: the cap is reached
            break
    if stats["documents"] == 0:
        raise UserError(f"source {source.name}: no documents (empty files?); give it text "
                        "or remove it from data.sources")
    return {"kind": source.kind, "domain": source_domain(source), "licence": plan.licence,
            "sha256": plan.sha256, "origin": plan.origin, "items_available": len(items),
            "capped_at_bytes": cap, "skipped": dict(skipped), **_counts(stats)}


def _counts(stats: Counter[str]) -> dict[str, int]:
    keys = ("documents", "bytes", "characters", "items", "undecodable_bytes",
            "documents_with_undecodable_bytes", "man_header_footer_lines_dropped")
    return {k: int(stats[k]) for k in keys}


def collect_maths(source: MathsSource, cfg: DataConfig, out: TextIO,
                  eval_out: TextIO) -> dict[str, Any]:
    """Generate the maths worksheets into ``out`` and held-out problems into ``eval_out``."""
    cap = cfg.byte_cap(source)
    stats: Counter[str] = Counter()
    problems = maths.generate_problems(source.count, source.seed, source.max_operand, False)
    sheet: list[maths.Problem] = []
    for i, problem in enumerate(problems, 1):
        sheet.append(problem)
        if len(sheet) == source.problems_per_document or i == source.count:
            text = maths.format_worksheet(sheet)
            _write_doc(out, f"{source.name}:{stats['documents']}", source, text)
            stats["documents"] += 1
            stats["characters"] += len(text)
            stats["bytes"] += len(text.encode())
            sheet = []
            if cap is not None and stats["bytes"] >= cap:
                break
    held = maths.generate_problems(source.eval_count, source.seed, source.max_operand, True)
    for problem in held:
        eval_out.write(json.dumps({"prompt": problem.prompt, "answer": problem.answer}) + "\n")
        stats["eval_problems"] += 1
    report: dict[str, Any] = {"kind": source.kind, "domain": source_domain(source),
              "licence": "generated (no third-party text)", "sha256": None,
              "origin": f"seeded generator (seed {source.seed}, max operand "
                        f"{source.max_operand})", "capped_at_bytes": cap, "skipped": {},
              **_counts(stats), "eval_problems": int(stats["eval_problems"])}
    return report


def run_collect(cfg: DataConfig, out_dir: Path, progress: Progress = _no_progress) -> dict:
    """Write ``out_dir/raw`` (all or nothing) and return its report.

    Raises:
        UserError: any source fails (see :func:`collect_source`); ``raw/`` is not written.
    """
    with atomic_dir(out_dir / "raw") as tmp:
        report: dict[str, Any] = {"sources": {}}
        with open(tmp / "maths_eval.jsonl", "w", encoding="utf-8") as eval_out:
            for source in cfg.sources:
                with open(tmp / f"{source.name}.jsonl", "w", encoding="utf-8") as out:
                    if isinstance(source, MathsSource):
                        entry = collect_maths(source, cfg, out, eval_out)
                    else:
                        entry = collect_source(source, cfg, out, progress)
                report["sources"][source.name] = entry
        write_json(tmp / "report.json", report)
    return report
