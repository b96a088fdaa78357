"""The tensor table: Hugging Face GPT-2 names and shapes, published parameter counts, the
flags the trainer reads (decay, norm, init) and the tied head."""

from __future__ import annotations

import pytest

from fugaku_sim.spec import ModelSpec, load_model
from fugaku_sim.tensors import LM_HEAD, WPE, WTE, tensor_table

SPEC = ModelSpec(name="t", layers=2, hidden=16, heads=2, seq_len=8, vocab=32)


def test_gpt2_small_has_its_published_parameter_count() -> None:
    """GPT-2 124M: 124,439,808 parameters (Hugging Face ``gpt2``, tied head counted once)."""
    assert tensor_table(load_model("gpt2-small")).parameters() == 124_439_808


def test_block_names_shapes_and_splits() -> None:
    table = tensor_table(SPEC)
    got = [(r.name.removeprefix("transformer.h.1."), r.shape, r.split.kind)
           for r in table.block(1)]
    assert got == [
        ("ln_1.weight", (16,), "rep"), ("ln_1.bias", (16,), "rep"),
        ("attn.c_attn.weight", (16, 48), "qkv"), ("attn.c_attn.bias", (48,), "qkv"),
        ("attn.c_proj.weight", (16, 16), "row"), ("attn.c_proj.bias", (16,), "rep"),
        ("ln_2.weight", (16,), "rep"), ("ln_2.bias", (16,), "rep"),
        ("mlp.c_fc.weight", (16, 64), "col"), ("mlp.c_fc.bias", (64,), "col"),
        ("mlp.c_proj.weight", (64, 16), "row"), ("mlp.c_proj.bias", (16,), "rep"),
    ]
    assert table["transformer.h.1.attn.c_attn.weight"].split.heads == (2, 2, 2)
    assert [r.name for r in table.part("embedding")] == [WTE, WPE]
    assert [r.name for r in table.part("head")] == [
        "transformer.ln_f.weight", "transformer.ln_f.bias", LM_HEAD]


def test_flags_the_trainer_reads() -> None:
    table = tensor_table(SPEC)
    decay = {r.name for r in table if r.decay}
    assert decay == {WTE, WPE, LM_HEAD} | {f"transformer.h.{i}.{s}" for i in range(2) for s in (
        "attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")}
    assert {r.name for r in table if r.norm} == {
        f"transformer.{p}.{w}" for p in ("h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f")
        for w in ("weight", "bias")}
    assert table["transformer.h.0.mlp.c_proj.weight"].init == "normal_residual"
    assert table["transformer.h.0.ln_1.weight"].init == "ones"
    assert table["transformer.h.0.mlp.c_fc.bias"].init == "zeros"


def test_tied_and_untied_head() -> None:
    tied = tensor_table(SPEC)
    assert tied[LM_HEAD].tied_to == WTE and tied.source(LM_HEAD) == WTE
    assert LM_HEAD not in tied.checkpoint_shapes()
    untied = tensor_table(SPEC.model_copy(update={"tied_embeddings": False}))
    assert untied[LM_HEAD].tied_to is None and untied.source(LM_HEAD) == LM_HEAD
    assert list(untied.checkpoint_shapes())[-1] == LM_HEAD
    assert untied.parameters() == tied.parameters() + 32 * 16
    with pytest.raises(KeyError):
        tied["transformer.h.2.ln_1.weight"]


@pytest.mark.interop
def test_names_and_shapes_are_transformers_gpt2() -> None:
    """Every checkpoint tensor is a ``GPT2LMHeadModel`` parameter of the same shape."""
    transformers = pytest.importorskip("transformers")
    for tied in (True, False):
        spec = SPEC.model_copy(update={"tied_embeddings": tied, "ffn_hidden": 48})
        config = transformers.GPT2Config(
            vocab_size=spec.vocab, n_positions=spec.seq_len, n_embd=spec.hidden,
            n_layer=spec.layers, n_head=spec.heads, n_inner=spec.ffn, tie_word_embeddings=tied)
        model = transformers.GPT2LMHeadModel(config)
        theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()
                  if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        if tied:
            theirs.pop(LM_HEAD)
        assert tensor_table(spec).checkpoint_shapes() == theirs
        assert tensor_table(spec).parameters() == model.num_parameters()
