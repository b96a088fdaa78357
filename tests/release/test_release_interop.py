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


# --- the tokenizer: AutoTokenizer gives the data stage's ids --------------------------------

@pytest.fixture(scope="module")
def hf_tokenizer(built_release):
    return transformers.AutoTokenizer.from_pretrained(str(built_release))


def test_auto_tokenizer_gives_the_training_ids_of_every_heldout_document(
        hf_tokenizer, built_release, rel_inputs):
    """Every held-out document of every domain: AutoTokenizer's ids equal sentencepiece's
    and, with EOD appended, the test shards' documents (the tokens evaluation reads); the
    ids decode back to the text."""
    import sentencepiece as spm

    from fugaku_sim.data.config import DOMAINS
    from fugaku_sim.evaluate.heldout import DataDir, domain_documents

    sp = spm.SentencePieceProcessor(model_file=str(built_release / "tokenizer.model"))
    data = DataDir.open(rel_inputs["data"])
    for domain in DOMAINS:
        texts = data.heldout_texts(domain)
        shards, _ = domain_documents(data, domain, None, 2, None, 0)
        assert len(texts) == len(shards) == 40, domain
        for text, shard in zip(texts, shards):
            ids = hf_tokenizer(text).input_ids
            assert ids == sp.encode(text), (domain, text)
            assert ids + [hf_tokenizer.eos_token_id] == shard.tolist()
            assert hf_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_auto_tokenizer_special_tokens_and_no_additions(hf_tokenizer, built_release,
                                                        rel_spec):
    import sentencepiece as spm

    assert isinstance(hf_tokenizer, transformers.PreTrainedTokenizerFast)
    assert (hf_tokenizer.unk_token_id, hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id,
            hf_tokenizer.pad_token_id) == (0, 1, 2, 2)
    assert hf_tokenizer.model_max_length == rel_spec.seq_len
    sp = spm.SentencePieceProcessor(model_file=str(built_release / "tokenizer.model"))
    # the text '</s>' is text, as in sentencepiece: not the end-of-document id
    ids = hf_tokenizer("a</s>b <s> <0x41>").input_ids
    assert 2 not in ids and ids == sp.encode("a</s>b <s> <0x41>")
    batch = hf_tokenizer(["富岳", "The model runs"], padding=True)
    assert batch.input_ids[0][-1] == 2 and batch.attention_mask[0][-1] == 0


def test_two_lines_load_a_release_that_generates_from_a_japanese_prompt(built_release):
    """The model card's two lines; greedy generation equals our KV-cached decoding."""
    from fugaku_sim.evaluate.generation import Sampling, generate
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(built_release))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(built_release))
    ids = tokenizer("富岳は", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None,
                             pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0], skip_special_tokens=True)
    assert text.startswith("富岳は") and out.shape[1] == ids.shape[1] + 10
    spec, params, _ = load_release(built_release)
    ours = generate(GPT(spec, params), ids[0].tolist(), 10, Sampling(),
                    np.random.default_rng(0))
    assert out[0, ids.shape[1]:].tolist() == ours


REFUSED = 97
LOAD_AND_ENCODE = f"""
import json, os, sys
import sentencepiece


def refuse(*args, **kwargs):
    os._exit({REFUSED})  # ends the process even where transformers catches exceptions


sentencepiece.SentencePieceProcessor.__init__ = refuse
from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("富岳は日本語の文章を学びます。").input_ids
print(json.dumps({{"ids": ids, "class": type(tok).__name__,
                  "protobuf": "google.protobuf" in sys.modules}}))
"""


def test_auto_tokenizer_never_uses_sentencepiece_or_protobuf(built_release, tmp_path):
    """transformers imports sentencepiece when it is installed, but loading and encoding must
    build no sentencepiece processor (the slow path of tokenizer.model) and import no
    protobuf, here 'installed' as a package that ends the process when imported. (Before
    tokenizer.json, that path converted tokenizer.model and mapped Japanese to no ids.)"""
    import json
    import os
    import subprocess
    import sys

    import sentencepiece as spm

    stubs = tmp_path / "stubs"
    (stubs / "google" / "protobuf").mkdir(parents=True)
    (stubs / "google" / "__init__.py").write_text("")
    (stubs / "google" / "protobuf" / "__init__.py").write_text(
        f"import os\nos._exit({REFUSED})\n")
    meta = stubs / "protobuf-5.29.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: protobuf\nVersion: 5.29.0\n")
    env = {**os.environ, "PYTHONPATH": str(stubs), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", LOAD_AND_ENCODE, str(built_release)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    got = json.loads(run.stdout.strip().splitlines()[-1])
    sp = spm.SentencePieceProcessor(model_file=str(built_release / "tokenizer.model"))
    assert got["ids"] == sp.encode("富岳は日本語の文章を学びます。") and not got["protobuf"]
