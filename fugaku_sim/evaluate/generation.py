"""Text generation with incremental (KV-cached) decoding: greedy, temperature, top-k.

The prompt is run once (prefill) and fills the cache; each new token then costs one
position's forward pass. A model without a cache (``new_cache`` returns None), or
``use_cache=False``, recomputes the whole sequence every step; the two give the same tokens,
which the tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fugaku_sim.evaluate.lm import LanguageModel


@dataclass(frozen=True)
class Sampling:
    """How to pick the next token: ``temperature`` 0 is greedy (argmax); otherwise sample
    from ``softmax(logits / temperature)`` restricted to the ``top_k`` most likely tokens
    (all tokens when ``top_k`` is None)."""

    temperature: float = 0.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


def next_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """One token id from next-token ``logits`` [V]."""
    if sampling.temperature == 0:
        return int(np.argmax(logits))
    x = np.asarray(logits, dtype=np.float64) / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < x.shape[0]:
        kth = np.partition(x, -sampling.top_k)[-sampling.top_k]
        x = np.where(x < kth, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    return int(rng.choice(x.shape[0], p=p))


def generate(model: LanguageModel, prompt: list[int], max_new_tokens: int, sampling: Sampling,
             rng: np.random.Generator, stop_ids: frozenset[int] = frozenset(),
             use_cache: bool = True,
             stop_when: Callable[[list[int]], bool] | None = None) -> list[int]:
    """New token ids after ``prompt`` (not including it), at most ``max_new_tokens``.

    Generation stops after a token in ``stop_ids`` (which is kept), when ``stop_when(new)``
    is true for the tokens so far, or when the sequence
    reaches the model's ``seq_len``; a prompt longer than ``seq_len - 1`` keeps its last
    ``seq_len - 1`` tokens.

    Raises:
        ValueError: an empty prompt.
    """
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    seq = list(prompt)[-(model.seq_len - 1):] if model.seq_len > 1 else list(prompt)[-1:]
    budget = min(max_new_tokens, model.seq_len - len(seq) + 1)
    cache = model.new_cache(1) if use_cache else None
    logits = model.logits(np.asarray([seq], dtype=np.int64), cache)[0, -1]  # [V]
    new: list[int] = []
    while len(new) < budget:
        token = next_token(logits, sampling, rng)
        new.append(token)
        seq.append(token)
        if (token in stop_ids or len(new) == budget or len(seq) > model.seq_len
                or (stop_when is not None and stop_when(new))):
            break
        if cache is not None:
            logits = model.logits(np.asarray([[token]], dtype=np.int64), cache)[0, -1]
        else:
            logits = model.logits(np.asarray([seq], dtype=np.int64))[0, -1]
    return new
