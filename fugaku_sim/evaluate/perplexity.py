"""Held-out perplexity: token-level, over the documents of one domain as training sees them.

Definition (reported verbatim in eval.json as ``PERPLEXITY_DEFINITION``): the held-out
documents of a domain, each ending with its end-of-document token (EOD), are concatenated in
order after one leading EOD, giving a stream ``s_0 = EOD, s_1 .. s_N``. Every token
``s_1 .. s_N`` (document tokens and their EODs) is a target exactly once. Windows of at most
``seq_len`` input tokens start at ``0, stride, 2 stride, ...``; a window scores only the
targets no earlier window scored (Hugging Face's strided perplexity; ``stride = seq_len``
gives disjoint windows, the same context a training sample gives). Then

    NLL = -sum_j ln p(s_j | the window's tokens before s_j)        (nats)
    perplexity = exp(NLL / N),   bits per byte = NLL / ln 2 / bytes

where ``bytes`` counts the UTF-8 bytes of the documents' decoded text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fugaku_sim.evaluate.lm import LanguageModel, target_logprobs

PERPLEXITY_DEFINITION = (
    "token-level perplexity exp(NLL/N): held-out documents (each ending with EOD) "
    "concatenated after one leading EOD; every token after it (EODs included) scored once "
    "as ln p(token | preceding tokens of its window); windows of seq_len input tokens start "
    "every `stride` tokens and score only targets not scored before (stride = seq_len: "
    "disjoint windows, as in training); bits_per_byte = NLL / ln 2 / UTF-8 bytes of the "
    "decoded documents")


@dataclass(frozen=True)
class Window:
    """Inputs ``stream[start:end]``, targets ``stream[start+1:end+1]``; the last
    ``scored`` targets count."""

    start: int
    end: int
    scored: int


def plan_windows(targets: int, seq_len: int, stride: int) -> list[Window]:
    """Windows over a stream of ``targets + 1`` tokens so that each target is scored once.

    Example: ``plan_windows(10, 4, 2)`` -> inputs [0:4] scoring 4, [2:6] scoring 2,
    [4:8] scoring 2, [6:10] scoring 2.

    Raises:
        ValueError: ``stride`` outside ``1 .. seq_len``.
    """
    if not 1 <= stride <= seq_len:
        raise ValueError(f"stride {stride} must lie in 1..seq_len ({seq_len})")
    windows: list[Window] = []
    done = 0
    start = 0
    while done < targets:
        end = min(start + seq_len, targets)
        windows.append(Window(start, end, end - done))
        done = end
        start += stride
    return windows


def stream_nll(model: LanguageModel, stream: np.ndarray, stride: int,
               batch: int | None = None,
               on_item: Callable[[int, int], None] | None = None) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of ``stream[1:]`` and the number of targets.

    Windows of equal length are run ``batch`` at a time (default: about 4096 tokens);
    ``on_item(windows done, windows)`` after each batch.
    """
    batch = batch or max(1, 4096 // model.seq_len)
    windows = plan_windows(len(stream) - 1, model.seq_len, stride)
    total = 0.0
    i = 0
    while i < len(windows):
        length = windows[i].end - windows[i].start
        group = [windows[i]]
        while (i + len(group) < len(windows) and len(group) < batch
               and windows[i + len(group)].end - windows[i + len(group)].start == length):
            group.append(windows[i + len(group)])
        inputs = np.stack([stream[w.start:w.end] for w in group])  # [B,T]
        targets = np.stack([stream[w.start + 1:w.end + 1] for w in group])  # [B,T]
        logp = target_logprobs(model, inputs, targets)  # [B,T]
        total -= sum(float(row[-w.scored:].sum()) for row, w in zip(logp, group))
        i += len(group)
        if on_item is not None:
            on_item(i, len(windows))
    return total, len(stream) - 1


def domain_perplexity(model: LanguageModel, documents: list[np.ndarray], eod_id: int,
                      stride: int, text_bytes: int | None = None,
                      on_item: Callable[[int, int], None] | None = None
                      ) -> dict[str, float | int]:
    """Perplexity of ``documents`` (token arrays ending with EOD), as defined above;
    ``on_item`` as :func:`stream_nll`'s.

    Returns documents, tokens (targets), nll_nats, loss (nats/token), perplexity,
    bits_per_token and, when ``text_bytes`` is given, bits_per_byte.

    Raises:
        ValueError: no documents.
    """
    if not documents:
        raise ValueError("no documents to score")
    stream = np.concatenate([np.asarray([eod_id], dtype=np.int64)]
                            + [np.asarray(d, dtype=np.int64) for d in documents])
    nll, n = stream_nll(model, stream, stride, on_item=on_item)
    loss = nll / n
    out: dict[str, float | int] = {
        "documents": len(documents), "tokens": n, "nll_nats": nll, "loss": loss,
        "perplexity": math.exp(loss), "bits_per_token": loss / math.log(2)}
    if text_bytes:
        out["bytes"] = text_bytes
        out["bits_per_byte"] = nll / math.log(2) / text_bytes
    return out
