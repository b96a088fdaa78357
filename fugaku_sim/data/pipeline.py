"""Run the data stages in order, with progress on stderr and wall time per stage.

Stages (each a ``fugaku-sim data <verb>``, each reading the previous stage's output under
DIR and writing its own, all or nothing): collect -> clean -> dedup -> tokenizer ->
tokenize -> mix (which also writes blend files, the manifest and the composition plot).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fugaku_sim.data.config import DataConfig
from fugaku_sim.io import output_folder

STAGES: tuple[str, ...] = ("collect", "clean", "dedup", "tokenizer", "tokenize", "mix")

Progress = Callable[[str, int, int], None]


@contextmanager
def progress_bar(stage: str, quiet: bool) -> Iterator[Progress]:
    """The stage's progress on stderr (:mod:`fugaku_sim.progress`: a bar on a terminal, lines
    in a log); yields ``update(task, done, total)`` (total 0: unknown)."""
    from fugaku_sim.progress import Progress as Lines

    with Lines(f"data {stage}", enabled=not quiet) as progress:

        def update(task: str, done: int, total: int) -> None:
            progress.update(done, total or None, task)

        progress.update(0, 1, "stage", "started")  # a line whether or not the stage counts
        yield update
        progress.flush()  # each task's last count, then the stage's end
        progress.update(1, 1, "stage", "done")


def run_stage(stage: str, cfg: DataConfig, out_dir: Path, quiet: bool = False) -> dict:
    """Run one stage; return its report with ``wall_seconds`` added.

    Raises:
        UserError: bad input or a missing earlier stage (nothing of this stage is left).
    """
    from fugaku_sim.data import clean, collect, dedup, encode, manifest, mixture, tokenizer

    started = time.perf_counter()
    with output_folder(out_dir), progress_bar(stage, quiet) as update:
        if stage == "collect":
            report = collect.run_collect(cfg, out_dir, update)
        elif stage == "clean":
            report = clean.run_clean(cfg, out_dir, update)
        elif stage == "dedup":
            report = dedup.run_dedup(cfg, out_dir, update)
        elif stage == "tokenizer":
            report = tokenizer.run_tokenizer(cfg, out_dir)
        elif stage == "tokenize":
            report = encode.run_tokenize(cfg, out_dir, update)
        elif stage == "mix":
            mix = mixture.run_mix(cfg, out_dir)
            report = {"mixture": manifest.write_manifest(cfg, out_dir, mix)["mixture"]}
        else:
            raise ValueError(f"unknown stage {stage}")
    report["wall_seconds"] = round(time.perf_counter() - started, 3)
    return report


def summarise(stage: str, report: dict) -> dict[str, Any]:
    """A short machine-readable summary of a stage report (what the CLI prints)."""
    summary: dict[str, Any] = {"stage": stage, "wall_seconds": report.get("wall_seconds")}
    if stage == "collect":
        summary["sources"] = {k: {"documents": v["documents"], "bytes": v["bytes"]}
                              for k, v in report["sources"].items()}
    elif stage == "clean":
        summary["sources"] = {k: {"documents_out": v.get("documents_out", 0),
                                  "dropped": {r: d["documents"] for r, d in v["dropped"].items()}}
                              for k, v in report["sources"].items()}
    elif stage == "dedup":
        summary.update(exact=report["exact"]["removed"], near=report["near"]["removed"],
                       kept=report["documents_kept"])
    elif stage == "tokenizer":
        summary.update(vocab_size=report["vocab_size"], train_seconds=report["train_seconds"],
                       round_trip={d: f"{s['exact']}/{s['documents']}"
                                   for d, s in report["round_trip_heldout"].items()})
    elif stage == "tokenize":
        summary.update(tokens={k: v["tokens"] for k, v in report["datasets"].items()})
    elif stage == "mix":
        m = report["mixture"]
        summary.update(total_train_tokens=m["total_train_tokens"],
                       shares={d: {"target": r["target_share"],
                                   "achieved": round(r["achieved_share"], 4)}
                               for d, r in m["domains"].items()})
    return summary


def run_all(cfg: DataConfig, out_dir: Path, quiet: bool = False,
            stages: tuple[str, ...] = STAGES) -> dict[str, dict]:
    """Run ``stages`` in order; return each stage's report (with ``wall_seconds``)."""
    return {stage: run_stage(stage, cfg, out_dir, quiet) for stage in stages}
