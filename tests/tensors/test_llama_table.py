"""The Llama rows of the tensor table: Hugging Face ``LlamaForCausalLM`` names and ``[out, in]``
shapes, published parameter counts, splits along the stored axis, roles shared with GPT-2."""

from __future__ import annotations

import numpy as np
import pytest

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LLAMA_EMBED, LM_HEAD, ROLES, WTE, tensor_table
from fugaku_sim.tensors.split import Split, heads_split, local_shape, shard, unshard


def llama(**kw: object) -> ModelSpec:
    base: dict[str, object] = dict(
        name="l", layers=2, hidden=16, heads=4, kv_heads=2, ffn_hidden=40, seq_len=8, vocab=32,
        norm="rmsnorm", mlp="swiglu", positions="rotary", bias=False, tied_embeddings=False)
    base.update(kw)
    return ModelSpec.model_validate(base)


# Published totals (Hugging Face model cards' safetensors parameter counts).
LLAMA_2_7B = dict(layers=32, hidden=4096, heads=32, kv_heads=32, ffn_hidden=11008, vocab=32000,
                  seq_len=4096)
LLAMA_3_8B = dict(layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336, vocab=128256,
                  seq_len=8192, rope_theta=500000.0)


@pytest.mark.parametrize("shape, total", [(LLAMA_2_7B, 6_738_415_616),
                                          (LLAMA_3_8B, 8_030_261_248)])
def test_published_llama_parameter_counts(shape: dict[str, object], total: int) -> None:
    assert tensor_table(llama(**shape)).parameters() == total


def test_block_names_shapes_and_splits() -> None:
    table = tensor_table(llama())
    got = [(r.name.removeprefix("model.layers.1."), r.shape, r.split.kind, r.split.axis, r.role)
           for r in table.block(1)]
    assert got == [
        ("input_layernorm.weight", (16,), "rep", None, "attn_norm"),
        ("self_attn.q_proj.weight", (16, 16), "qkv", 0, "q"),
        ("self_attn.k_proj.weight", (8, 16), "qkv", 0, "k"),
        ("self_attn.v_proj.weight", (8, 16), "qkv", 0, "v"),
        ("self_attn.o_proj.weight", (16, 16), "row", -1, "attn_out"),
        ("post_attention_layernorm.weight", (16,), "rep", None, "mlp_norm"),
        ("mlp.gate_proj.weight", (40, 16), "col", 0, "mlp_gate"),
        ("mlp.up_proj.weight", (40, 16), "col", 0, "mlp_up"),
        ("mlp.down_proj.weight", (16, 40), "row", -1, "mlp_out"),
    ]
    assert [r.name for r in table.part("embedding")] == [LLAMA_EMBED]
    assert [r.name for r in table.part("head")] == ["model.norm.weight", LM_HEAD]
    assert table[LM_HEAD].tied_to is None
    assert tensor_table(llama(tied_embeddings=True))[LM_HEAD].tied_to == LLAMA_EMBED


def test_biases_follow_their_layers_split() -> None:
    table = tensor_table(llama(bias=True))
    kinds = {r.name.removeprefix("model.layers.0."): (r.shape, r.split.kind, r.split.axis)
             for r in table.block(0) if r.name.endswith(".bias")}
    assert kinds == {
        "self_attn.q_proj.bias": ((16,), "qkv", 0), "self_attn.k_proj.bias": ((8,), "qkv", 0),
        "self_attn.v_proj.bias": ((8,), "qkv", 0), "self_attn.o_proj.bias": ((16,), "rep", None),
        "mlp.gate_proj.bias": ((40,), "col", 0), "mlp.up_proj.bias": ((40,), "col", 0),
        "mlp.down_proj.bias": ((16,), "rep", None)}
    assert not any(r.decay for r in table if r.name.endswith(".bias"))


def test_roles_name_the_same_tensor_in_both_families() -> None:
    gpt = tensor_table(ModelSpec(name="g", layers=2, hidden=16, heads=4, seq_len=8, vocab=32))
    lla = tensor_table(llama())
    assert gpt.find("attn_out", 1).name == "transformer.h.1.attn.c_proj.weight"  # type: ignore[union-attr]
    assert lla.find("attn_out", 1).name == "model.layers.1.self_attn.o_proj.weight"  # type: ignore[union-attr]
    assert gpt.find("tok_embed").name == WTE and lla.find("tok_embed").name == LLAMA_EMBED  # type: ignore[union-attr]
    assert lla.find("pos_embed") is None and gpt.find("q", 0) is None
    assert lla.find("attn_norm_bias", 0) is None
    assert {r.role for r in lla} | {r.role for r in gpt} <= set(ROLES)
    with pytest.raises(ValueError, match="unknown tensor role"):
        lla.find("attention")


def test_gqa_in_the_gpt2_fused_projection() -> None:
    table = tensor_table(ModelSpec(name="g", layers=1, hidden=16, heads=4, kv_heads=1,
                                   seq_len=8, vocab=32))
    qkv = table["transformer.h.0.attn.c_attn.weight"]
    assert qkv.shape == (16, 16 + 2 * 4) and qkv.split.heads == (4, 1, 1)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_linear_layout_splits_round_trip(tp: int) -> None:
    """[out, in] tensors: columns of a column-parallel layer are rows here, and back."""
    rng = np.random.default_rng(0)
    for split, shape in [(Split("col", along=0), (8, 5)), (Split("row", along=-1), (5, 8)),
                         (heads_split(4, 0), (8, 5)), (heads_split(1, 0), (2, 5))]:
        full = rng.standard_normal(shape)
        parts = [shard(full, split, tp, i) for i in range(tp)]
        assert all(p.shape == local_shape(shape, split, tp) for p in parts)
        np.testing.assert_array_equal(unshard(parts, split), full)
    # head 0 of k/v (one key/value head) is copied to every rank
    kv = rng.standard_normal((2, 5))
    assert all(np.array_equal(shard(kv, heads_split(1, 0), tp, i), kv) for i in range(tp))
    # a row-parallel [out, in] weight: rank i holds input features [i F/t, (i+1) F/t)
    down = np.arange(5 * 8).reshape(5, 8)
    np.testing.assert_array_equal(shard(down, Split("row", along=-1), tp, tp - 1),
                                  down[:, 8 - 8 // tp:])


@pytest.mark.interop
def test_names_and_shapes_match_transformers_llama() -> None:
    transformers = pytest.importorskip("transformers")
    spec = llama(bias=True)
    config = transformers.LlamaConfig(
        vocab_size=spec.vocab, hidden_size=spec.hidden, intermediate_size=spec.ffn,
        num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv, attention_bias=True, mlp_bias=True,
        tie_word_embeddings=False, max_position_embeddings=spec.seq_len)
    model = transformers.LlamaForCausalLM(config)
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()
              if not k.endswith("rotary_emb.inv_freq")}
    assert theirs == tensor_table(spec).checkpoint_shapes()
