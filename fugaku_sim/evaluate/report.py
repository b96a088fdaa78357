"""eval.md: the evaluation results as markdown tables (the same numbers as eval.json)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def perplexity_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: domain, documents, tokens, loss, perplexity, bits per byte."""
    rows = ["| domain | documents | tokens | loss (nats/token) | perplexity | bits/byte |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for domain, r in result["perplexity"]["domains"].items():
        if "skipped" in r:
            rows.append(f"| {domain} | - | - | - | - | {r['skipped']} |")
            continue
        rows.append(f"| {domain} | {r['documents']} | {r['tokens']} | {_fmt(r['loss'])} | "
                    f"{_fmt(r['perplexity'], 2)} | {_fmt(r.get('bits_per_byte'))} |")
    return rows


def task_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: every scored task with its metric, chance level and item count."""
    rows = ["| task | metric | score | ± stderr | chance | items |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    ar = result.get("arithmetic") or {}
    if "exact_match" in ar:
        shots = ar.get("shots", 0)
        rows.append(f"| arithmetic | exact match (greedy, {shots}-shot) | {_fmt(ar['exact_match'])} | "
                    f"{_fmt(ar.get('exact_match_stderr'))} | ~0 | {ar['problems']} |")
    for name, t in (result.get("multiple_choice") or {}).get("tasks", {}).items():
        if "skipped" in t:
            rows.append(f"| {name} | - | - | - | - | {t['skipped']} |")
            continue
        for metric in ("acc", "acc_norm"):
            rows.append(f"| {name} | {metric} | {_fmt(t[metric])} | "
                        f"{_fmt(t[metric + '_stderr'])} | {_fmt(t['chance'])} | {t['items']} |")
    return rows


def render_markdown(result: dict[str, Any]) -> str:
    """The whole eval.md text."""
    m = result["model"]
    lines = [f"# Evaluation of {m['name']}", "",
             f"Model: `{m['source']}` ({m['parameters']:,} parameters, seq_len "
             f"{m['spec']['seq_len']}); data: `{result['data']['dir']}`; seed "
             f"{result['options']['seed']}.", "",
             "## Held-out perplexity", "", *perplexity_table(result), "",
             f"Definition: {result['perplexity']['definition']}.", "",
             "## Tasks", "", *task_table(result), "",
             f"Multiple choice: {result['multiple_choice']['definition']}.", "",
             f"Arithmetic: {result['arithmetic']['definition']}.", ""]
    examples = (result.get("arithmetic") or {}).get("examples") or []
    if examples:
        lines += ["| prompt | answer | model | correct |", "| --- | --- | --- | --- |"]
        lines += [f"| `{e['prompt']}` | {e['answer']} | `{e['completion']}` | "
                  f"{'yes' if e['correct'] else 'no'} |" for e in examples]
        lines.append("")
    lines += ["## Generation samples", ""]
    for s in result.get("samples", []):
        sampling = (f"temperature {s['temperature']}, top-k {s['top_k']}, seed {s['seed']}"
                    if s["temperature"] else "greedy")
        completion = s["completion"].replace("\n", " ⏎ ")
        lines += [f"- **{s['language']}** ({sampling}): `{s['prompt']}` → {completion}"]
    lines.append("")
    return "\n".join(lines)
