"""Key/value heads held in copies: which elements are copies, and a gradient norm that counts
every parameter once over the tensor ranks."""

from __future__ import annotations

import numpy as np
import pytest

from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors import layout_chunks, tensor_table
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.copies import (
    copied_elements,
    copied_mask,
    copies_per_head,
    counted_ranges,
)
from fugaku_sim.train.stage import local_entries, stage_tensor_names


def llama(kv: int, **kw: object) -> ModelSpec:
    return ModelSpec.model_validate(dict(
        name="l", layers=2, hidden=16, heads=4, kv_heads=kv, ffn_hidden=24, seq_len=8,
        vocab=32, norm="rmsnorm", mlp="swiglu", positions="rotary", bias=False,
        tied_embeddings=False) | kw)


GPT2_MQA = ModelSpec(name="g", layers=2, hidden=16, heads=4, kv_heads=1, seq_len=8, vocab=32)


def flat_of(spec: ModelSpec, tp: int, dp: int = 1) -> FlatParams:
    """Tensor rank 0's flat layout (every tensor rank's is the same), in segments of a few
    tensors so that pieces cut through tensors."""
    names = stage_tensor_names(spec, layout_chunks(spec, Layout(tp=tp), 0))
    groups = [names[i:i + 3] for i in range(0, len(names), 3)]
    return FlatParams(local_entries(spec, names, tp), pad_to=dp, groups=groups)


@pytest.mark.parametrize(("kv", "tp", "copies"), [(2, 4, 2), (1, 4, 4), (2, 2, 1), (4, 2, 1),
                                                  (4, 1, 1)])
def test_copies_per_head(kv: int, tp: int, copies: int) -> None:
    assert copies_per_head(llama(kv), tp) == copies


def test_copied_elements_are_the_key_value_heads() -> None:
    spec = llama(2)
    k = "model.layers.0.self_attn.k_proj.weight"
    local = copied_elements(spec, k, 4, 1)
    assert local is not None and local.shape == (4, 16) and local.all()  # one head of 4 x 16
    assert copied_elements(spec, "model.layers.0.self_attn.q_proj.weight", 4, 1) is None
    assert copied_elements(spec, k, 2, 1) is None  # split, not copied
    # GPT-2's fused projection: the query columns split, the key and value columns copied
    fused = copied_elements(GPT2_MQA, "transformer.h.1.attn.c_attn.weight", 2, 0)
    assert fused is not None and fused.shape == (16, 8 + 4 + 4)
    np.testing.assert_array_equal(fused[0], [0] * 8 + [1] * 8)
    mask = copied_mask(spec, flat_of(spec, 4), 4, 0)
    assert mask.sum() == 2 * 2 * 4 * 16  # k and v of two layers, one head each
    assert mask.dtype == bool


@pytest.mark.parametrize(("spec", "tp"), [(llama(2), 4), (llama(1), 2), (llama(2), 2),
                                          (GPT2_MQA, 2), (GPT2_MQA, 4),
                                          (llama(2, tied_embeddings=True, bias=True), 4)])
@pytest.mark.parametrize("dp", [1, 2, 4])
def test_the_norm_counts_every_parameter_once(spec: ModelSpec, tp: int, dp: int) -> None:
    """Summed over the tensor ranks and the data-parallel shares, the elements counted are
    the model's parameters."""
    counted = 0
    for r in range(tp):
        flat = flat_of(spec, tp, dp)
        for d in range(dp):
            for piece in flat.owned(d, dp):
                counted += sum(hi - lo for lo, hi in counted_ranges(spec, flat, tp, r, piece))
    assert counted == tensor_table(spec).parameters()
