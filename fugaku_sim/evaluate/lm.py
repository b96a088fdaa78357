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
    """``log p(targets[b, t] | inputs[b, :t+1])`` [B,T] in nats, from one forward pass.

    ``inputs`` and ``targets`` are [B,T] int arrays; ``targets`` is ``inputs`` shifted left
    by one in every use here.
    """
    logp = log_softmax(model.logits(inputs))  # [B,T,V]
    return np.take_along_axis(logp, targets[..., None].astype(np.int64), axis=-1)[..., 0]


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
