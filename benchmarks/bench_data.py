"""Benchmark the whole data stage on the built-in default corpus (or another config).

Reports wall time per stage, peak resident memory of this process and of its largest child
(``resource.getrusage``: ``ru_maxrss`` is the peak of one process, in KiB on Linux), corpus size
per source, the achieved Japanese share, and tokenization throughput of the pipeline's
tokenize stage vs plain single-process sentencepiece encoding of the same documents in the
same run (the ratio > 1 means the pipeline, with its pool, is faster than plain encoding).

Targets: whole stage <= 300 s on 2 cores, peak <= 2 GB. Prints one JSON object.

    python benchmarks/bench_data.py [--config default] [--out DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fugaku_sim.data.config import DOMAINS, SPLITS, load_data_config  # noqa: E402
from fugaku_sim.data.pipeline import STAGES, run_stage  # noqa: E402


def peak_rss_mib() -> dict[str, float]:
    """Peak RSS of this process and of the largest waited-for child, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_MiB": round(own, 1), "largest_child_MiB": round(child, 1)}


def plain_encode_chars_per_s(out: Path) -> dict[str, float]:
    """Encode every deduplicated document with one sentencepiece processor, timing only
    ``encode`` (the same documents the tokenize stage encoded)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    chars = tokens = 0
    seconds = 0.0
    for d in DOMAINS:
        for s in SPLITS:
            with open(out / "dedup" / f"{d}_{s}.jsonl", encoding="utf-8") as f:
                for line in f:
                    text = json.loads(line)["text"]
                    t0 = time.perf_counter()
                    ids = sp.encode(text)
                    seconds += time.perf_counter() - t0
                    chars += len(text)
                    tokens += len(ids) + 1
    return {"characters": chars, "tokens": tokens, "seconds": round(seconds, 3),
            "chars_per_s": chars / seconds if seconds else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--out", default=None, help="output directory (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    cfg = load_data_config(args.config)
    if args.workers:
        cfg = cfg.model_copy(update={"workers": args.workers})
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-data-"))
    stage_s: dict[str, float] = {}
    reports = {}
    started = time.perf_counter()
    for stage in STAGES:
        reports[stage] = run_stage(stage, cfg, out, quiet=True)
        stage_s[stage] = reports[stage]["wall_seconds"]
    total_s = time.perf_counter() - started
    peak = peak_rss_mib()
    tok = reports["tokenize"]
    chars = sum(v["characters"] for v in tok["datasets"].values())
    pipeline_cps = chars / tok["wall_seconds"]
    plain = plain_encode_chars_per_s(out)
    mix = reports["mix"]["mixture"]
    raw = json.loads((out / "raw" / "report.json").read_text())
    result = {
        "config": args.config, "out": str(out), "workers": cfg.workers,
        "wall_seconds_total": round(total_s, 2), "wall_seconds_by_stage": stage_s,
        "peak_rss": peak, "target": {"wall_seconds": 300, "peak_MiB": 2048},
        "corpus_by_source": {k: {"documents": v["documents"], "bytes": v["bytes"],
                                 "characters": v["characters"]}
                             for k, v in raw["sources"].items()},
        "corpus_bytes_total": sum(v["bytes"] for v in raw["sources"].values()),
        "total_train_tokens": mix["total_train_tokens"],
        "shares": {d: {"target": r["target_share"], "achieved": round(r["achieved_share"], 4)}
                   for d, r in mix["domains"].items()},
        "tokenize_throughput": {
            "pipeline_chars_per_s": round(pipeline_cps), "plain_chars_per_s":
            round(plain["chars_per_s"]), "pipeline_over_plain": round(
                pipeline_cps / plain["chars_per_s"], 3) if plain["chars_per_s"] else None,
            "characters": chars, "plain_encode_seconds": plain["seconds"],
            "pipeline_tokenize_wall_seconds": tok["wall_seconds"]},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
