"""Interoperability: transformers loads a release and computes the same logits as we do."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.interop

ATOL_LOGITS = 1e-4


@pytest.fixture(scope="module")
def hf_model(built_release):
    model = transformers.GPT2LMHeadModel.from_pretrained(str(built_release))
    model.eval()
    return model


def test_transformers_logits_match_ours(hf_model, built_release):
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    spec, params, _ = load_release(built_release)
    tokens = np.random.default_rng(123).integers(0, spec.vocab, size=(2, spec.seq_len))
    with torch.no_grad():
        theirs = hf_model(torch.tensor(tokens)).logits.numpy()
    ours = GPT(spec, params).logits(tokens)
    assert theirs.shape == ours.shape == (2, spec.seq_len, spec.vocab)
    np.testing.assert_allclose(ours, theirs, atol=ATOL_LOGITS, rtol=0)
    # the embedding really is tied, as config.json says
    assert hf_model.lm_head.weight.data_ptr() == hf_model.transformer.wte.weight.data_ptr()


def test_transformers_greedy_generation_matches_our_kv_cached_decoding(hf_model, built_release):
    from fugaku_sim.evaluate.generation import Sampling, generate
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    spec, params, tokenizer = load_release(built_release)
    prompt = [tokenizer.eod_id] + tokenizer.encode("富岳は")
    ours = generate(GPT(spec, params), prompt, 10, Sampling(), np.random.default_rng(0))
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=len(ours),
                                do_sample=False, eos_token_id=None, pad_token_id=0)
    assert out[0, len(prompt):].tolist() == ours
