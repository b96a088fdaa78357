"""Interoperability: transformers loads a release of either family with
``AutoModelForCausalLM`` and computes the same logits and greedy continuations as we do."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.interop

ATOL_LOGITS = 1e-4


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def release(request):
    """(release directory, the model transformers loads from it)."""
    directory = request.getfixturevalue("built_release" if request.param == "gpt2"
                                        else "llama_release")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory))
    model.eval()
    return directory, model


def test_transformers_logits_match_ours(release):
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    directory, hf_model = release
    spec, params, _ = load_release(directory)
    tokens = np.random.default_rng(123).integers(0, spec.vocab, size=(2, spec.seq_len))
    with torch.no_grad():
        theirs = hf_model(torch.tensor(tokens)).logits.numpy()
    ours = GPT(spec, params).logits(tokens)
    assert theirs.shape == ours.shape == (2, spec.seq_len, spec.vocab)
    np.testing.assert_allclose(ours, theirs, atol=ATOL_LOGITS, rtol=0)
    # the head is tied (or not) as config.json says
    tied = (hf_model.lm_head.weight.data_ptr()
            == hf_model.get_input_embeddings().weight.data_ptr())
    assert tied == spec.tied_embeddings


def test_the_class_and_shape_transformers_builds(release):
    from fugaku_sim.release.load import load_release

    directory, hf_model = release
    spec = load_release(directory)[0]
    config = hf_model.config
    if spec.family == "llama":
        assert type(hf_model).__name__ == "LlamaForCausalLM"
        assert (config.num_key_value_heads, config.rms_norm_eps) == (spec.kv, spec.norm_eps)
        assert config.rope_parameters["rope_theta"] == spec.rope_theta
        assert not config.attention_bias and not config.mlp_bias
        assert hf_model.model.layers[0].self_attn.k_proj.weight.shape == (
            spec.kv * spec.head_dim, spec.hidden)
    else:
        assert type(hf_model).__name__ == "GPT2LMHeadModel"
    assert sum(p.numel() for p in hf_model.parameters()) == sum(
        v.size for v in load_release(directory)[1].values())


def test_transformers_greedy_generation_matches_our_kv_cached_decoding(release):
    from fugaku_sim.evaluate.generation import Sampling, generate
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    directory, hf_model = release
    spec, params, tokenizer = load_release(directory)
    prompt = [tokenizer.eod_id] + tokenizer.encode("富岳は")
    ours = generate(GPT(spec, params), prompt, 20, Sampling(), np.random.default_rng(0))
    assert len(ours) == 20
    with torch.no_grad():
        out = hf_model.generate(torch.tensor([prompt]), max_new_tokens=len(ours),
                                do_sample=False, eos_token_id=None, pad_token_id=0)
    assert out[0, len(prompt):].tolist() == ours
