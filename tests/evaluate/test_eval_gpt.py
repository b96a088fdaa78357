"""KV-cached decoding equals full recomputation; the numpy GPT's basic math."""

from __future__ import annotations

import numpy as np
import pytest

from fugaku_sim.evaluate.generation import Sampling, generate
from fugaku_sim.evaluate.gpt import GPT, gelu_new, layer_norm
from tests.evaluate.synthetic import random_params

ATOL_CACHE = 1e-5


QK_ROLES = ("qkv", "q", "k")


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tiny_spec, tiny_llama_spec):
    from fugaku_sim.tensors import tensor_table

    spec = tiny_spec if request.param == "gpt2" else tiny_llama_spec
    params = random_params(spec, seed=1)
    # larger weights than the 0.02 init so that attention is far from uniform
    scaled = {r.name for r in tensor_table(spec) if r.role in QK_ROLES}
    params = {k: (v * 10 if k in scaled else v) for k, v in params.items()}
    return GPT(spec, params)


def test_layer_norm_normalises_and_gelu_matches_tanh_formula():
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    y = layer_norm(x, np.ones(8, np.float32), np.zeros(8, np.float32))
    assert np.allclose(y.mean(-1), 0, atol=1e-6)
    assert np.allclose(y.var(-1), 1, atol=1e-4)  # eps 1e-5 shrinks the variance slightly
    assert gelu_new(np.array([0.0]))[0] == 0.0
    assert abs(gelu_new(np.array([1.0]))[0] - 0.8411920) < 1e-6  # HF gelu_new(1.0)


def test_kv_cached_logits_equal_full_recomputation(model):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, model.vocab, size=(2, model.seq_len))
    full = model.logits(tokens)  # [B,T,V]
    cache = model.new_cache(2)
    parts = [model.logits(tokens[:, :7], cache)]  # prefill 7 positions
    for t in range(7, 20):
        parts.append(model.logits(tokens[:, t:t + 1], cache))  # one position at a time
    parts.append(model.logits(tokens[:, 20:], cache))  # the rest at once
    cached = np.concatenate(parts, axis=1)
    assert cache.length == model.seq_len
    np.testing.assert_allclose(cached, full, atol=ATOL_CACHE, rtol=0)


def test_causality_future_tokens_do_not_change_past_logits(model):
    rng = np.random.default_rng(1)
    a = rng.integers(0, model.vocab, size=(1, 16))
    b = a.copy()
    b[0, 10:] = rng.integers(0, model.vocab, size=6)
    np.testing.assert_allclose(model.logits(a)[0, :10], model.logits(b)[0, :10], atol=1e-6)


@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.9, top_k=20),
                                      Sampling(temperature=1.5)])
def test_generation_with_cache_equals_recomputation(model, sampling):
    prompt = [2, 5, 17, 33]
    runs = [generate(model, prompt, 20, sampling, np.random.default_rng(42), use_cache=c)
            for c in (True, False)]
    assert runs[0] == runs[1]
    assert len(runs[0]) == 20


def test_generation_is_seeded_and_stops(model):
    prompt = [2, 5, 17, 33]
    s = Sampling(temperature=1.0, top_k=50)
    one = generate(model, prompt, 10, s, np.random.default_rng(7))
    two = generate(model, prompt, 10, s, np.random.default_rng(7))
    assert one == two
    first = one[0]
    stopped = generate(model, prompt, 10, s, np.random.default_rng(7),
                       stop_ids=frozenset({first}))
    assert stopped == [first]
    # the sequence never exceeds seq_len positions
    long = generate(model, list(range(30)), 100, Sampling(), np.random.default_rng(0))
    assert len(long) == model.seq_len - 30 + 1


def test_top_k_one_is_greedy(model):
    prompt = [2, 9, 4]
    greedy = generate(model, prompt, 8, Sampling(), np.random.default_rng(0))
    top1 = generate(model, prompt, 8, Sampling(temperature=2.0, top_k=1),
                    np.random.default_rng(5))
    assert greedy == top1


def test_too_many_positions_is_an_error(model):
    with pytest.raises(ValueError, match="seq_len"):
        model.logits(np.zeros((1, model.seq_len + 1), dtype=np.int64))


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt2-gqa"])
def test_full_forward_equals_the_trainers_forward(tiny_spec, tiny_llama_spec, family):
    """One model math: the inference forward and the trainer's forward_logits agree."""
    from fugaku_sim.train.model import forward_logits

    spec = {"gpt2": tiny_spec, "llama": tiny_llama_spec,
            "gpt2-gqa": tiny_spec.model_copy(update={"kv_heads": 1})}[family]
    spec = type(spec).model_validate(spec.model_dump())
    params = random_params(spec, seed=4)
    tokens = np.random.default_rng(2).integers(0, spec.vocab, size=(2, spec.seq_len))
    ours = GPT(spec, params).logits(tokens)
    np.testing.assert_allclose(ours, forward_logits(params, spec, tokens), atol=1e-5, rtol=0)
