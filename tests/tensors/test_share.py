"""What one rank holds: worked by hand for gpt-tiny, by chunk under interleaving, the tied
copy, and the sum over ranks."""

from __future__ import annotations

import pytest

from fugaku_sim.spec import Layout, ModelSpec, load_model
from fugaku_sim.tensors import (
    LM_HEAD,
    WTE,
    chunk_parameters,
    held_tensors,
    layout_chunks,
    model_parallel_parameters,
    parameters_by_stage,
    stage_parameters,
    stage_tensor_count,
    tensor_table,
    tied_copy_parameters,
    tied_names,
)

TINY = load_model("gpt-tiny")  # 4 layers, C 128, F 512, V 8192, T 128


def test_gpt_tiny_tp2_pp2_by_hand() -> None:
    """One block at tp = 2: the split matrices and biases halve, the two norms (4 C) and the
    row-parallel biases (2 C) stay whole. The old count halved every tensor of the block,
    so it was short by 6 C / 2 = 384 a layer: 768 per rank of a two-layer stage."""
    c, f, v, t = 128, 512, 8192, 128
    block = (c * 3 * c + 3 * c + c * c + c * f + f + f * c) // 2 + 6 * c
    assert block == 99_520
    stage0 = 2 * block + v * c // 2 + t * c
    stage1 = 2 * block + 2 * c + v * c // 2  # final norm, tied copy of wte
    assert parameters_by_stage(TINY, Layout(tp=2, pp=2)) == [stage0, stage1] == [739_712, 723_584]
    whole_layer = c * 3 * c + 3 * c + c * c + c + c * f + f + f * c + c + 4 * c
    before = [2 * (whole_layer // 2) + v * c // 2 + t * c,
              2 * (whole_layer // 2) + 2 * c + v * c // 2]
    assert [a - b for a, b in zip([stage0, stage1], before)] == [768, 768]


def test_one_stage_holds_the_model_and_no_copy() -> None:
    assert stage_parameters(TINY, Layout(), 0) == tensor_table(TINY).parameters()
    names = [r.name for r in held_tensors(tensor_table(TINY), layout_chunks(TINY, Layout(), 0))]
    assert LM_HEAD not in names and names.count(WTE) == 1
    assert stage_tensor_count(TINY, Layout(), 0) == 2 + 4 * 12 + 2
    assert stage_tensor_count(TINY, Layout(pp=2), 1, "block") == 2 * 12
    assert stage_tensor_count(TINY, Layout(pp=2), 1, "head") == 3  # ln_f and the tied copy
    assert tied_copy_parameters(TINY, Layout(pp=1)) == 0 and not tied_names(TINY, Layout())


def test_interleaved_chunks() -> None:
    """pp 2 x 2 chunks of one layer each: stage 0 holds layers 0 and 2 (and the embedding),
    stage 1 layers 1 and 3 (and the head with its tied copy)."""
    layout = Layout(pp=2, schedule="interleaved", virtual_stages=2)
    table = tensor_table(TINY)
    block = sum(r.size for r in table.block(0))
    emb = sum(r.size for r in table.part("embedding"))
    head = sum(r.size for r in table.part("head"))  # ln_f and the copy
    assert chunk_parameters(TINY, layout, 0) == [emb + block, block]
    assert chunk_parameters(TINY, layout, 1) == [block, block + head]
    assert parameters_by_stage(TINY, layout) == parameters_by_stage(TINY, Layout(pp=2))
    assert [c.layers for c in layout_chunks(TINY, layout, 1)] == [range(1, 2), range(3, 4)]


def test_tied_copy_and_untied_head() -> None:
    layout = Layout(tp=2, pp=2)
    assert tied_copy_parameters(TINY, layout) == 8192 * 128 // 2
    assert tied_names(TINY, layout) == {WTE, LM_HEAD}
    untied = TINY.model_copy(update={"tied_embeddings": False})
    assert tied_copy_parameters(untied, layout) == 0 and not tied_names(untied, layout)
    assert parameters_by_stage(untied, layout) == parameters_by_stage(TINY, layout)
    assert stage_parameters(untied, Layout(), 0) == stage_parameters(TINY, Layout(), 0) + 8192 * 128


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 2), (4, 1), (4, 4)])
def test_ranks_together_hold_the_model_and_the_copies(tp: int, pp: int) -> None:
    """tp x pp ranks hold the model once, plus tp - 1 more copies of every replicated
    tensor and the tied copy when the head sits on another stage."""
    layout = Layout(tp=tp, pp=pp)
    table = tensor_table(TINY)
    replicated = sum(r.size for r in table if r.split.kind == "rep" and r.tied_to is None)
    copy = TINY.vocab * TINY.hidden if pp > 1 else 0
    assert model_parallel_parameters(TINY, layout) == (
        table.parameters() + (tp - 1) * replicated + copy)


def test_padded_vocabulary_is_counted_in_whole_rows() -> None:
    """GPT-2's 50,257 tokens at tp = 2: 25,129 rows on each rank (the padding Megatron-LM
    adds), so stage 0 holds 384 more than half the embedding."""
    small = load_model("gpt2-small")
    spec = ModelSpec(name="v", layers=2, hidden=small.hidden, heads=small.heads,
                     seq_len=small.seq_len, vocab=small.vocab)
    layout = Layout(tp=2, pp=2)
    block = sum(r.local_size(2) for r in tensor_table(spec).block(0))
    assert stage_parameters(spec, layout, 0) == block + 25_129 * 768 + 1024 * 768
