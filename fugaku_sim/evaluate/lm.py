"""The interface every scorer in this package uses, and log-probabilities through it.

A :class:`LanguageModel` maps token ids [B,T] to next-token logits [B,T,V]. The real GPT
(:class:`fugaku_sim.evaluate.gpt.GPT`) implements it, and so can a test's unigram or lookup
"model", which lets the perplexity, multiple-choice and exact-match code be checked against
numbers that follow from a formula.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class LanguageModel(Protocol):
    """Next-token logits for a batch of sequences, optionally continuing a cache.

    ``new_cache(batch)`` returns an opaque cache object, or ``None`` when the model cannot
    decode incrementally (callers then recompute the whole sequence each step).
    """

    @property
    def seq_len(self) -> int: ...

    @property
    def vocab(self) -> int: ...

    def new_cache(self, batch: int) -> Any | None: ...

    def logits(self, tokens: np.ndarray, cache: Any | None = None) -> np.ndarray: ...


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed in float64 for stable sums."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def target_logprobs(model: LanguageModel, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``log p(targets[b, t] | inputs[b, :t+1])`` [B,T] in nats (float64), one forward pass.

    ``inputs`` and ``targets`` are [B,T] int arrays; ``targets`` is ``inputs`` shifted left
    by one in every use here. Only the target's log-probability is formed:
    ``logit[target] - logsumexp(logits)``, in the logits' precision.
    """
    logits = model.logits(inputs)  # [B,T,V]
    top = logits.max(axis=-1, keepdims=True)  # [B,T,1]
    lse = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))  # [B,T]
    picked = np.take_along_axis(logits, targets[..., None].astype(np.int64), axis=-1)[..., 0]
    return (picked - lse).astype(np.float64)


def continuation_logprob(model: LanguageModel, context: list[int],
                         continuation: list[int]) -> float:
    """Sum of ``log p(continuation | context)`` in nats (lm-evaluation-harness ``loglikelihood``).

    As the harness does, the context is cut from the left so that context plus continuation
    fit the model's ``seq_len + 1`` tokens (the last token is only a target).

    Raises:
        ValueError: empty context or continuation, or a continuation longer than ``seq_len``.
    """
    if not context or not continuation:
        raise ValueError("context and continuation must both be non-empty")
    if len(continuation) > model.seq_len:
        raise ValueError(f"continuation of {len(continuation)} tokens exceeds seq_len")
    whole = (list(context) + list(continuation))[-(model.seq_len + 1):]
    arr = np.asarray(whole, dtype=np.int64)[None, :]
    logp = target_logprobs(model, arr[:, :-1], arr[:, 1:])[0]  # [len(whole)-1]
    return float(logp[-len(continuation):].sum())


def choices_logprob(model: LanguageModel, context: list[int],
                    choices: list[list[int]]) -> np.ndarray:
    """:func:`continuation_logprob` of every choice [N] (nats); choices of equal length run as
    one batch (the context is cut the same way for each)."""
    out = np.empty(len(choices))
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(choices):
        by_len.setdefault(len(c), []).append(i)
    for n, idx in by_len.items():
        if not context or n == 0 or n > model.seq_len:
            raise ValueError("context and choices must be non-empty and fit seq_len")
        rows = np.asarray([(list(context) + list(choices[i]))[-(model.seq_len + 1):]
                           for i in idx], dtype=np.int64)  # [B, <= seq_len + 1]
        logp = target_logprobs(model, rows[:, :-1], rows[:, 1:])  # [B, T]
        out[idx] = logp[:, -n:].sum(axis=1)
    return out
