"""Perplexity: window plan covers each target once; a unigram model scores as the formula says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.evaluate.gpt import GPT
from fugaku_sim.evaluate.lm import log_softmax
from fugaku_sim.evaluate.perplexity import domain_perplexity, plan_windows, stream_nll
from tests.evaluate.synthetic import random_params


class UnigramModel:
    """A "model" that knows the data's token frequencies and ignores context."""

    def __init__(self, counts: np.ndarray, seq_len: int) -> None:
        self._logp = np.log(counts / counts.sum())
        self._seq_len = seq_len

    @property
    def seq_len(self) -> int:
        return self._seq_len

    @property
    def vocab(self) -> int:
        return self._logp.shape[0]

    def new_cache(self, batch: int) -> None:
        return None

    def logits(self, tokens: np.ndarray, cache: object = None) -> np.ndarray:
        assert tokens.shape[1] <= self._seq_len
        return np.broadcast_to(self._logp, tokens.shape + self._logp.shape).copy()


@given(targets=st.integers(1, 200), seq_len=st.integers(1, 40), data=st.data())
def test_every_target_is_scored_exactly_once(targets, seq_len, data):
    stride = data.draw(st.integers(1, seq_len))
    seen = np.zeros(targets + 1, dtype=int)
    for w in plan_windows(targets, seq_len, stride):
        assert 0 < w.end - w.start <= seq_len and 1 <= w.scored <= w.end - w.start
        seen[w.end - w.scored + 1:w.end + 1] += 1  # targets are stream indices start+1..end
    assert seen[0] == 0 and (seen[1:] == 1).all()


def test_plan_windows_docstring_example():
    got = [(w.start, w.end, w.scored) for w in plan_windows(10, 4, 2)]
    assert got == [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    with pytest.raises(ValueError):
        plan_windows(10, 4, 5)


@pytest.mark.parametrize("stride", [16, 5, 1])
def test_unigram_model_perplexity_is_exp_entropy(stride):
    rng = np.random.default_rng(0)
    eod, vocab = 2, 50
    docs = [np.append(rng.integers(3, vocab, size=int(rng.integers(5, 40))), eod)
            for _ in range(12)]
    targets = np.concatenate(docs)  # every token after the leading EOD
    counts = np.bincount(targets, minlength=vocab).astype(np.float64) + 0.0
    counts[counts == 0] = 1e-12  # tokens that never occur get (almost) no mass
    model = UnigramModel(counts, seq_len=16)
    got = domain_perplexity(model, docs, eod, stride=stride, text_bytes=1000)
    p = np.bincount(targets, minlength=vocab) / len(targets)
    entropy = -sum(pi * math.log(pi) for pi in p if pi > 0)  # nats per token
    assert got["tokens"] == len(targets)
    assert got["perplexity"] == pytest.approx(math.exp(entropy), rel=1e-9)
    assert got["bits_per_byte"] == pytest.approx(entropy * len(targets) / math.log(2) / 1000)


def test_disjoint_windows_equal_per_window_sum(tiny_spec):
    """stride = seq_len: the NLL is the sum over disjoint windows of seq_len tokens."""
    model = GPT(tiny_spec, random_params(tiny_spec, seed=2))
    rng = np.random.default_rng(1)
    stream = rng.integers(0, tiny_spec.vocab, size=3 * tiny_spec.seq_len + 6)
    nll, n = stream_nll(model, stream, stride=tiny_spec.seq_len, batch=2)
    expect = 0.0
    for start in range(0, len(stream) - 1, tiny_spec.seq_len):
        x = stream[start:start + tiny_spec.seq_len + 1]
        logp = log_softmax(model.logits(x[None, :-1]))[0]
        expect -= float(logp[np.arange(len(x) - 1), x[1:]].sum())
    assert n == len(stream) - 1
    # float32 logits: a batch of 2 and a batch of 1 may take different BLAS kernels, whose
    # sums round differently (seen: 4e-9 relative); a window counted twice or missed is >1e-2
    assert nll == pytest.approx(expect, rel=1e-6)
