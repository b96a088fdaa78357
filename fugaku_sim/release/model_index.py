"""The Hugging Face ``model-index`` of a release, built from eval.json.

Format (Hub model card metadata): a list with one entry ``{name, results: [...]}``; each
result has ``task: {type, name}``, ``dataset: {name, type, split, ...}`` and
``metrics: [{type, value, name}]``.
"""

from __future__ import annotations

from typing import Any


def _perplexity_results(ev: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for domain, r in (ev.get("perplexity") or {}).get("domains", {}).items():
        if "perplexity" not in r:
            continue
        out.append({
            "task": {"type": "text-generation", "name": "Language modelling"},
            "dataset": {"name": f"fugaku-sim held-out {domain}", "type": "fugaku-sim-heldout",
                        "config": domain, "split": "test"},
            "metrics": [{"type": "perplexity", "value": round(r["perplexity"], 4),
                         "name": f"perplexity ({domain})"}]})
    return out


def _choice_results(ev: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for task, t in (ev.get("multiple_choice") or {}).get("tasks", {}).items():
        if "acc" not in t:
            continue
        out.append({
            "task": {"type": "multiple-choice", "name": "Multiple choice"},
            "dataset": {"name": f"fugaku-sim {task}", "type": "fugaku-sim-continuation",
                        "config": task, "split": "test"},
            "metrics": [{"type": "accuracy", "value": round(t["acc"], 4), "name": "acc"},
                        {"type": "accuracy", "value": round(t["acc_norm"], 4),
                         "name": "acc_norm"}]})
    return out


def model_index(name: str, ev: dict[str, Any]) -> list[dict[str, Any]]:
    """``model-index`` for model ``name`` from an eval.json object."""
    results = _perplexity_results(ev)
    ar = ev.get("arithmetic") or {}
    if "exact_match" in ar:
        results.append({
            "task": {"type": "text-generation", "name": "Arithmetic"},
            "dataset": {"name": "fugaku-sim held-out arithmetic", "type": "fugaku-sim-maths",
                        "split": "test"},
            "metrics": [{"type": "exact_match", "value": round(ar["exact_match"], 4),
                         "name": "exact match (greedy)"}]})
    results += _choice_results(ev)
    return [{"name": name, "results": results}]
