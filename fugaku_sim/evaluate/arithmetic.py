"""Arithmetic exact match with greedy decoding on the held-out problems.

Each prompt (``"(12 + 7) * 3 ="``) follows an EOD, as a document starts in training, and
optionally a few solved problems as worksheet lines (few-shot); the model continues greedily until it emits a newline or EOD, or ``max_new_tokens`` tokens.
The completion's first line, stripped of white space, must equal the answer exactly
(the training worksheets write ``prompt answer`` per line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fugaku_sim.evaluate.generation import Sampling, generate
from fugaku_sim.evaluate.lm import LanguageModel
from fugaku_sim.evaluate.tokenizer import Tokenizer


def first_line(text: str) -> str:
    """The completion as an answer: the text before its first newline, stripped."""
    return text.split("\n", 1)[0].strip()


def is_exact_match(completion: str, answer: str) -> bool:
    """True when the completion's first line equals ``answer`` (both stripped)."""
    return first_line(completion) == answer.strip()


def shot_text(problems: list[tuple[str, str]], index: int, shots: int, seed: int) -> str:
    """``shots`` other solved problems as worksheet lines (``prompt answer\n``), seeded per
    problem; empty for zero-shot."""
    if shots <= 0 or len(problems) < 2:
        return ""
    rng = np.random.default_rng([seed, index])
    others = [j for j in rng.permutation(len(problems)) if j != index][:shots]
    return "".join(f"{problems[j][0]} {problems[j][1]}\n" for j in others)


def solve(model: LanguageModel, tokenizer: Tokenizer, prompt: str,
          max_new_tokens: int) -> str:
    """The model's greedy completion of ``prompt``: decoded text up to a newline or EOD.

    A context longer than ``seq_len - max_new_tokens`` keeps its last tokens, so the answer
    always has room.
    """
    ids = [tokenizer.eod_id] + tokenizer.encode(prompt)
    ids = ids[-max(1, model.seq_len - max_new_tokens):]
    new = generate(model, ids, max_new_tokens, Sampling(), np.random.default_rng(0),
                   stop_ids=frozenset({tokenizer.eod_id}),
                   stop_when=lambda got: "\n" in tokenizer.decode(got))
    return tokenizer.decode([t for t in new if t != tokenizer.eod_id])


def evaluate_arithmetic(model: LanguageModel, tokenizer: Tokenizer,
                        problems: list[tuple[str, str]], max_new_tokens: int = 12,
                        examples: int = 5, shots: int = 0, seed: int = 0,
                        on_item: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Exact-match accuracy over ``problems`` (prompt, answer) and a few worked examples;
    ``on_item(done, total)`` after each problem.

    With ``shots`` > 0 each prompt follows that many other problems of the set, solved, as
    worksheet lines (lm-evaluation-harness few-shot style; the scored problem is never
    among its own shots).

    Raises:
        ValueError: no problems.
    """
    if not problems:
        raise ValueError("no problems to score")
    results = []
    for i, (prompt, answer) in enumerate(problems):
        context = shot_text(problems, i, shots, seed) + prompt
        completion = solve(model, tokenizer, context, max_new_tokens)
        results.append((prompt, answer, completion, is_exact_match(completion, answer)))
        if on_item is not None:
            on_item(i + 1, len(problems))
    correct = sum(r[3] for r in results)
    return {"problems": len(results), "correct": correct, "shots": shots,
            "exact_match": correct / len(results),
            "examples": [{"prompt": p, "answer": a, "completion": first_line(c), "correct": ok}
                         for p, a, c, ok in results[:examples]]}
