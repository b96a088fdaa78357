"""Multiple-choice tasks scored by log-likelihood, as lm-evaluation-harness scores them.

A task item is a context and several candidate continuations, one of them true. Each choice
is scored by ``sum ln p(continuation tokens | context)``; the prediction is the highest score
(``acc``), or the highest score divided by the continuation's length in characters
(``acc_norm``, the harness's length normalisation). Chance is ``1 / choices``.

Tasks here are built from held-out text (``build_continuation_items``): the context is
``context_tokens`` tokens of a document (after an EOD when they open it, as a document starts
in training), the true continuation the next ``continuation_tokens`` tokens, and the
distractors continuation spans cut the same way from other held-out documents of the same
language, drawn with a seeded generator. Working in token space keeps every choice exactly as long in tokens and
avoids tokenising a continuation apart from its context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.evaluate.lm import LanguageModel, choices_logprob


@dataclass(frozen=True)
class ChoiceItem:
    """One question: ``context`` ids, candidate ``choices`` (ids), index of the true one, and
    each choice's length in characters (for ``acc_norm``)."""

    context: list[int]
    choices: list[list[int]]
    label: int
    choice_chars: list[int]


def segments_of(docs: list[list[int]], length: int) -> list[tuple[int, int]]:
    """(document, start) of every non-overlapping ``length``-token segment, in order."""
    return [(d, start) for d, doc in enumerate(docs)
            for start in range(0, len(doc) - length + 1, length)]


def build_continuation_items(docs: list[list[int]], decode: Any, eod_id: int,
                             context_tokens: int, continuation_tokens: int, n_choices: int,
                             max_items: int, seed: int) -> list[ChoiceItem]:
    """Items from token lists of held-out documents (without EOD), seeded.

    Each document is cut into non-overlapping segments of ``context_tokens +
    continuation_tokens`` tokens; an item's context is a segment's first part (after an EOD
    when the segment opens its document) and the true choice the rest. Distractors are the
    continuation spans of segments of *other* documents, distinct from each other and from the
    true one; fewer than ``n_choices`` documents with a segment give no items.
    """
    need = context_tokens + continuation_tokens
    segs = segments_of(docs, need)
    if len({d for d, _ in segs}) < n_choices:
        return []
    rng = np.random.default_rng(seed)

    def span(k: int) -> list[int]:
        d, start = segs[k]
        return list(docs[d][start + context_tokens:start + need])

    items: list[ChoiceItem] = []
    for k in rng.permutation(len(segs)):
        if len(items) == max_items:
            break
        d, start = segs[int(k)]
        true = span(int(k))
        picked: list[list[int]] = []
        for j in rng.permutation(len(segs)):
            cand = span(int(j))
            if segs[int(j)][0] != d and cand != true and cand not in picked:
                picked.append(cand)
                if len(picked) == n_choices - 1:
                    break
        if len(picked) < n_choices - 1:
            continue
        label = int(rng.integers(0, n_choices))
        choices = picked[:label] + [true] + picked[label:]
        context = ([eod_id] if start == 0 else []) + list(docs[d][start:start + context_tokens])
        items.append(ChoiceItem(context, choices, label,
                                [max(1, len(decode(c))) for c in choices]))
    return items


def score_items(model: LanguageModel, items: list[ChoiceItem],
                on_item: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Accuracy, length-normalised accuracy, their standard errors and chance level;
    ``on_item(done, total)`` after each item.

    Returns items, choices, chance, acc, acc_stderr, acc_norm, acc_norm_stderr and
    per-item predictions (``predictions``: list of (label, predicted, predicted_norm)).

    Raises:
        ValueError: no items, or items with different numbers of choices.
    """
    if not items:
        raise ValueError("no items to score")
    n_choices = {len(it.choices) for it in items}
    if len(n_choices) != 1:
        raise ValueError("every item must have the same number of choices")
    preds: list[tuple[int, int, int]] = []
    for it in items:
        ll = choices_logprob(model, it.context, it.choices)  # [N]
        norm = ll / np.array(it.choice_chars, dtype=np.float64)
        preds.append((it.label, int(np.argmax(ll)), int(np.argmax(norm))))
        if on_item is not None:
            on_item(len(preds), len(items))
    n = len(items)
    acc = sum(p[0] == p[1] for p in preds) / n
    acc_norm = sum(p[0] == p[2] for p in preds) / n
    return {"items": n, "choices": n_choices.pop(), "chance": 1.0 / len(items[0].choices),
            "acc": acc, "acc_stderr": _stderr(acc, n),
            "acc_norm": acc_norm, "acc_norm_stderr": _stderr(acc_norm, n),
            "predictions": preds}


def _stderr(p: float, n: int) -> float | None:
    """Standard error of a mean of n Bernoulli outcomes (the harness's ``mean_stderr``);
    None for a single item."""
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None
