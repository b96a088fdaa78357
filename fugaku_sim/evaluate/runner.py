"""``fugaku-sim evaluate``: every measurement on one model, written as eval.json and eval.md.

eval.json (``schema: fugaku-sim/eval/1``) holds: ``model`` (name, source, parameters, spec,
``weights_sha256`` = :func:`weights_digest`), ``data``, ``options``, ``perplexity``
(definition, per domain), ``arithmetic`` (definition, exact match), ``multiple_choice``
(definition, per task acc/acc_norm with chance), ``samples`` and ``seconds`` per section.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.data.config import DOMAINS
from fugaku_sim.evaluate.arithmetic import evaluate_arithmetic
from fugaku_sim.evaluate.choice import build_continuation_items, score_items
from fugaku_sim.evaluate.generation import Sampling, generate
from fugaku_sim.evaluate.gpt import GPT
from fugaku_sim.evaluate.heldout import DataDir, domain_documents, pick
from fugaku_sim.evaluate.perplexity import PERPLEXITY_DEFINITION, domain_perplexity
from fugaku_sim.evaluate.tokenizer import Tokenizer

SCHEMA = "fugaku-sim/eval/1"
DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = (
    ("ja", "富岳は"), ("ja", "日本の研究者は"), ("en", "The supercomputer"),
    ("en", "Once upon a time"))
CHOICE_DEFINITION = (
    "held-out documents cut into non-overlapping segments of context_tokens + "
    "continuation_tokens tokens; context = a segment's first context_tokens tokens (after an "
    "EOD when the segment opens its document); choices = the segment's last "
    "continuation_tokens tokens and continuation spans of segments of other held-out "
    "documents of the same language (seeded); score = sum of ln p(choice tokens | context) "
    "(lm-evaluation-harness loglikelihood); acc = argmax score, acc_norm = argmax score / "
    "characters of the choice; chance = 1 / choices")
ARITHMETIC_DEFINITION = (
    "prompt after an EOD and `shots` other solved problems of the set as worksheet lines "
    "(`prompt answer` per line), greedy decoding until a newline or EOD (at most `max_new_tokens`); "
    "correct when the text before the first newline, stripped, equals the answer exactly")


#: progress within a section: (task, done, total, info)
Tick = Callable[[str, int, int, str], None]


def _no_tick(task: str, done: int, total: int, info: str) -> None:
    return None


def _task_tick(tick: Tick, task: str) -> Callable[[int, int], None]:
    """``tick`` for one task, as an item loop calls it: ``(done, total)``."""
    return lambda done, total: tick(task, done, total, "")


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how much of it. ``None`` limits mean all."""

    seed: int = 0
    max_docs: int | None = 200
    stride: int | None = None  # perplexity window stride; None: seq_len (disjoint windows)
    max_problems: int | None = 200
    max_new_tokens_maths: int = 12
    maths_shots: int = 0
    choice_items: int = 100
    n_choices: int = 4
    continuation_tokens: int = 12
    context_tokens: int = 64
    prompts: tuple[tuple[str, str], ...] = DEFAULT_PROMPTS
    temperature: float = 0.8
    top_k: int | None = 40
    max_new_tokens: int = 48
    languages: tuple[str, ...] = field(default=("ja", "en"))


def weights_digest(params: dict[str, np.ndarray]) -> str:
    """SHA-256 over tensor names, shapes and float32 bytes, in name order: identifies the
    weights whatever file they were stored in."""
    h = hashlib.sha256()
    for name in sorted(params):
        arr = np.ascontiguousarray(params[name], dtype="<f4")
        h.update(f"{name}:{list(arr.shape)}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _text_bytes(tokenizer: Tokenizer, docs: list[np.ndarray]) -> int:
    return sum(len(tokenizer.decode([int(t) for t in d]).encode("utf-8")) for d in docs)


def run_perplexity(model: GPT, tokenizer: Tokenizer, documents: dict[str, tuple[list, str]],
                   stride: int, tick: Tick = _no_tick) -> dict[str, Any]:
    """Per-domain perplexity (see :mod:`fugaku_sim.evaluate.perplexity`)."""
    out: dict[str, Any] = {}
    for domain, (docs, source) in documents.items():
        if not docs:
            out[domain] = {"skipped": "no held-out documents"}
            continue
        r = domain_perplexity(model, docs, tokenizer.eod_id, stride,
                              _text_bytes(tokenizer, docs),
                              _task_tick(tick, f"perplexity {domain} windows"))
        out[domain] = {**r, "source": source}
    return {"definition": PERPLEXITY_DEFINITION, "stride": stride, "domains": out}


def run_choice(model: GPT, tokenizer: Tokenizer, documents: dict[str, tuple[list, str]],
               opts: EvalOptions, tick: Tick = _no_tick) -> dict[str, Any]:
    """The continuation multiple-choice task of each language in ``opts.languages``."""
    cont = opts.continuation_tokens
    ctx = max(1, min(opts.context_tokens, model.seq_len - cont))
    tasks: dict[str, Any] = {}
    for lang in opts.languages:
        docs = [[int(t) for t in d if t != tokenizer.eod_id]
                for d in documents.get(lang, ([], ""))[0]]
        items = build_continuation_items(docs, tokenizer.decode, tokenizer.eod_id, ctx, cont,
                                         opts.n_choices, opts.choice_items, opts.seed)
        name = f"{lang}_continuation"
        if not items:
            tasks[name] = {"skipped": f"fewer than {opts.n_choices} documents of "
                                      f">= {ctx + cont} tokens", "chance": 1 / opts.n_choices}
            continue
        scored = score_items(model, items, _task_tick(tick, f"{name} items"))
        scored.pop("predictions")
        tasks[name] = scored
    return {"definition": CHOICE_DEFINITION, "context_tokens": ctx,
            "continuation_tokens": cont, "tasks": tasks}


def run_arithmetic(model: GPT, tokenizer: Tokenizer, data: DataDir,
                   opts: EvalOptions, tick: Tick = _no_tick) -> dict[str, Any]:
    """Exact match on (a seeded subset of) ``maths_eval.jsonl``."""
    path, problems = data.maths_problems()
    base = {"definition": ARITHMETIC_DEFINITION, "max_new_tokens": opts.max_new_tokens_maths}
    if not problems:
        return {**base, "skipped": "no maths_eval.jsonl in the data directory"}
    chosen = [problems[i] for i in pick(len(problems), opts.max_problems, opts.seed, "maths")]
    r = evaluate_arithmetic(model, tokenizer, chosen, opts.max_new_tokens_maths,
                            shots=opts.maths_shots, seed=opts.seed,
                            on_item=_task_tick(tick, "arithmetic problems"))
    em, n = r["exact_match"], r["problems"]
    stderr = math.sqrt(em * (1 - em) / (n - 1)) if n > 1 else None
    return {**base, "source": str(path), **r, "exact_match_stderr": stderr}


def run_samples(model: GPT, tokenizer: Tokenizer, opts: EvalOptions,
                tick: Tick = _no_tick) -> list[dict[str, Any]]:
    """One seeded, KV-cached sample per prompt (after an EOD, stopping at EOD)."""
    sampling = Sampling(opts.temperature, opts.top_k)
    out = []
    for i, (lang, prompt) in enumerate(opts.prompts):
        tick("samples", i, len(opts.prompts), prompt)
        rng = np.random.default_rng([opts.seed, i])
        ids = [tokenizer.eod_id] + tokenizer.encode(prompt)
        new = generate(model, ids, opts.max_new_tokens, sampling, rng,
                       stop_ids=frozenset({tokenizer.eod_id}))
        out.append({"language": lang, "prompt": prompt,
                    "completion": tokenizer.decode([t for t in new if t != tokenizer.eod_id]),
                    "tokens": len(new), "temperature": opts.temperature,
                    "top_k": opts.top_k, "seed": [opts.seed, i]})
    tick("samples", len(opts.prompts), len(opts.prompts), "")
    return out


def evaluate_model(model: GPT, tokenizer: Tokenizer, data: DataDir, opts: EvalOptions,
                   source: str, tick: Tick = _no_tick) -> dict[str, Any]:
    """Every measurement as the eval.json object (see the module docstring); ``tick(task,
    done, total, info)`` reports progress within each section.

    Raises:
        UserError: unreadable held-out files or shards (from the readers).
    """
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    documents = {d: domain_documents(data, d, tokenizer.encode, tokenizer.eod_id,
                                     opts.max_docs, opts.seed, tokenizer.vocab_size)
                 for d in DOMAINS}
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "model": {"name": model.spec.name, "source": source,
                  "parameters": int(sum(v.size for v in model.params.values())),
                  "spec": model.spec.model_dump(), "weights_sha256": weights_digest(model.params)},
        "data": {"dir": str(data.path), "tokenizer": str(tokenizer.path),
                 "tokenizer_vocab": tokenizer.vocab_size, "eod_id": tokenizer.eod_id},
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in asdict(opts).items()}}
    stages = [("perplexity", lambda: run_perplexity(model, tokenizer, documents,
                                                    opts.stride or model.seq_len, tick)),
              ("arithmetic", lambda: run_arithmetic(model, tokenizer, data, opts, tick)),
              ("multiple_choice", lambda: run_choice(model, tokenizer, documents, opts, tick)),
              ("samples", lambda: run_samples(model, tokenizer, opts, tick))]
    for name, stage in stages:
        t0 = time.perf_counter()
        result[name] = stage()
        seconds[name] = round(time.perf_counter() - t0, 3)
    seconds["total"] = round(time.perf_counter() - started, 3)
    result["seconds"] = seconds
    return result


def write_results(result: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``eval.json`` and ``eval.md`` under ``out_dir``: both or neither (a report that
    fails to render leaves no eval.json without its eval.md)."""
    from fugaku_sim.evaluate.report import render_markdown
    from fugaku_sim.io import atomic_paths, write_json, write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    finals = [out / "eval.json", out / "eval.md"]
    with atomic_paths(finals) as (json_tmp, md_tmp):
        write_json(json_tmp, result)
        write_text(md_tmp, render_markdown(result))
    return finals[0], finals[1]
