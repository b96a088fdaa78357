"""The manifest: one JSON record of what went in and what came out, and the composition plot.

Assembled from the stage reports (``raw/``, ``clean/``, ``dedup/``, ``tokenizer/``,
``tokenized/``) and the mix result: per source documents, bytes, characters, tokens, licence,
sha256 and origin; what every filter removed and why; dedup counts; the mixture table
(target vs achieved share of training tokens); tokenizer statistics; output checksums.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from fugaku_sim.data.config import DOMAINS, DataConfig
from fugaku_sim.data.fetch import sha256_file
from fugaku_sim.io import atomic_path, read_json, write_json


def _source_rows(raw: dict, clean: dict, dedup: dict, tok: dict) -> dict[str, Any]:
    rows = {}
    for name, r in raw["sources"].items():
        c = clean["sources"].get(name, {})
        kept = dedup["kept_by_source"].get(name, {})
        rows[name] = {
            "kind": r["kind"], "domain": r["domain"], "licence": r["licence"],
            "sha256": r["sha256"], "origin": r["origin"],
            "documents": r["documents"], "bytes": r["bytes"], "characters": r["characters"],
            "capped_at_bytes": r.get("capped_at_bytes"),
            "after_clean": {"documents": c.get("documents_out", 0),
                            "characters": c.get("characters_out", 0)},
            "after_dedup": {"documents": kept.get("documents", 0),
                            "characters": kept.get("characters", 0)},
            "tokens": tok["tokens_by_source"].get(name, 0),
        }
    return rows


def _filters(raw: dict, clean: dict, dedup: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, r in raw["sources"].items():
        c = clean["sources"].get(name, {})
        out[name] = {
            "collect_skipped": r.get("skipped", {}),
            "undecodable_bytes": r.get("undecodable_bytes", 0),
            "man_header_footer_lines_dropped": r.get("man_header_footer_lines_dropped", 0),
            "normalisation": {k: c.get(k, 0) for k in (
                "control_chars_removed", "fullwidth_alnum_folded",
                "halfwidth_kana_runs_folded", "gutenberg_texts_stripped",
                "gutenberg_chars_removed")},
            "clean_dropped": c.get("dropped", {}),
            "dedup_removed": {kind: dedup["removed_by_source"][kind].get(name, 0)
                              for kind in ("exact", "near")},
        }
    return out


def build_manifest(cfg: DataConfig, out_dir: Path, mix: dict[str, Any]) -> dict[str, Any]:
    """The manifest as a dict (see the module docstring)."""
    raw = read_json(out_dir / "raw" / "report.json", "collect")
    clean = read_json(out_dir / "clean" / "report.json", "clean")
    dedup = read_json(out_dir / "dedup" / "report.json", "dedup")
    tokenizer = read_json(out_dir / "tokenizer" / "report.json", "tokenizer")
    tok = read_json(out_dir / "tokenized" / "report.json", "tokenize")
    outputs = {}
    for path in sorted(out_dir.glob("shards/*")) + [out_dir / "tokenizer.model"]:
        outputs[str(path.relative_to(out_dir))] = {"bytes": path.stat().st_size,
                                                   "sha256": sha256_file(path)}
    return {
        "python": platform.python_version(),
        "config": cfg.model_dump(mode="json"),
        "sources": _source_rows(raw, clean, dedup, tok),
        "filters": _filters(raw, clean, dedup),
        "dedup": {k: dedup[k] for k in ("exact", "near", "documents_in", "documents_kept")},
        "splits": {"documents_and_characters": dedup["splits"],
                   "tokens": tok["datasets"]},
        "mixture": mix["mixture"],
        "heldout_documents": mix["heldout_documents"],
        "tokenizer": tokenizer,
        "outputs": outputs,
    }


def plot_composition(mixture: dict[str, Any], path: Path) -> None:
    """Grouped bars of target vs achieved share of training tokens per domain (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = mixture["domains"]
    x = range(len(DOMAINS))
    target = [100 * rows[d]["target_share"] for d in DOMAINS]
    achieved = [100 * rows[d]["achieved_share"] for d in DOMAINS]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    bars_t = ax.bar([i - 0.2 for i in x], target, 0.4, label="target", color="#9ecae1")
    bars_a = ax.bar([i + 0.2 for i in x], achieved, 0.4, label="achieved", color="#3182bd")
    ax.bar_label(bars_t, fmt="%.1f", fontsize=8)
    ax.bar_label(bars_a, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(x), [f"{d}\n{rows[d]['tokens']:,} tok" for d in DOMAINS])
    ax.set_ylabel("share of training tokens (%)")
    ax.set_title(f"Training mixture: {mixture['total_train_tokens']:,} tokens")
    ax.legend()
    ax.set_ylim(0, max(target + achieved) * 1.15 + 1)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_manifest(cfg: DataConfig, out_dir: Path, mix: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` and ``composition.png`` under ``out_dir``."""
    manifest = build_manifest(cfg, out_dir, mix)
    plot_composition(manifest["mixture"], out_dir / "composition.png")
    write_json(out_dir / "manifest.json", manifest)
    return manifest
