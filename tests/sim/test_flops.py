"""Parameter counts of the Llama-family presets against their published counts, and model FLOPs
per token against Hoffmann et al.'s (Chinchilla) op-by-op count."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.flops import (
    chinchilla_flops_per_token,
    layer_forward_flops,
    model_flops_per_token,
    parameter_count,
)
from fugaku_sim.spec import load_model_preset
from fugaku_sim.tensors import tensor_table

# Published parameter counts:
# - Llama 2 and 3: the Hugging Face Hub's safetensors totals of meta-llama/Llama-2-7b-hf,
#   Llama-2-13b-hf, Llama-2-70b-hf, Meta-Llama-3-8B and Meta-Llama-3-70B (the papers and model
#   cards round them to 7B, 13B, 70B, 8B, 70B);
# - LLM-jp-3: the model cards of llm-jp/llm-jp-3-13b and llm-jp/llm-jp-3-172b, embedding +
#   non-embedding parameters (1,018,746,880 + 12,688,184,320 and 2,444,992,512 +
#   169,947,181,056), the embeddings counted over the tokenizer's 99,487 pieces where the
#   checkpoints (and the presets) hold the padded vocabularies 99,584 and 99,840.
PUBLISHED = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llm-jp-3-13b": 1_018_746_880 + 12_688_184_320,
    "llm-jp-3-172b": 2_444_992_512 + 169_947_181_056,
}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_preset_parameters_equal_the_published_counts(preset: str) -> None:
    assert parameter_count(load_model_preset(preset).model) == pytest.approx(
        PUBLISHED[preset], rel=1e-3)


def test_llm_jp_non_embedding_parameters_exactly() -> None:
    """The padding is all of the difference: the blocks and final norm count exactly."""
    for preset, non_embedding in [("llm-jp-3-13b", 12_688_184_320),
                                  ("llm-jp-3-172b", 169_947_181_056)]:
        table = tensor_table(load_model_preset(preset).model)
        embeddings = sum(r.size for r in table if r.role in ("tok_embed", "head"))
        assert table.parameters() - embeddings == non_embedding


@pytest.mark.parametrize("preset", ["llama-2-7b", "llama-2-70b", "llama-3-8b", "llm-jp-3-172b",
                                    "gpt3-175b", "fugaku-llm-13b"])
def test_model_flops_are_chinchilla_without_embedding_and_softmax(preset: str) -> None:
    """Hoffmann et al. (2022, appendix F) count the embedding as a matrix product and the
    softmax; with those two terms out, the table's count is theirs exactly."""
    m = load_model_preset(preset).model
    embedding = 3 * 2 * m.vocab * m.hidden
    softmax = 3 * m.layers * 3 * m.heads * m.seq_len
    assert model_flops_per_token(m) == pytest.approx(
        chinchilla_flops_per_token(m) - embedding - softmax, rel=1e-12)


def test_model_flops_are_six_matrix_parameters_plus_attention() -> None:
    """Llama-2-7B: 6 x (parameters of its matrices but the embedding lookup) + 3 x 4 l T C."""
    m = load_model_preset("llama-2-7b").model
    table = tensor_table(m)
    matrices = sum(r.size for r in table if len(r.shape) == 2 and r.role != "tok_embed")
    attention = 3 * 4 * m.layers * m.seq_len * m.hidden
    assert model_flops_per_token(m) == 6 * matrices + attention
    assert model_flops_per_token(m) == pytest.approx(46.08e9, rel=1e-3)
    assert layer_forward_flops(m, 1) * m.layers * 3 < model_flops_per_token(m)  # + the head
