"""The plan's search over Llama-family models: the key/value-head rule constrains tp."""

from __future__ import annotations

from fugaku_sim.sim.plan import parallel_degrees, plan_layouts
from fugaku_sim.spec import ModelSpec, TrainSpec, load_cluster


def test_tp_must_split_or_copy_the_key_value_heads() -> None:
    """12 heads, 4 key/value heads: tp 3 and 6 divide the heads and the MLP but neither divide
    4 nor are multiples of it; tp 12 copies each key/value head to 3 ranks."""
    model = ModelSpec(name="g", layers=4, hidden=768, heads=12, kv_heads=4, ffn_hidden=3072,
                      seq_len=1024, vocab=32000, norm="rmsnorm", mlp="swiglu",
                      positions="rotary", bias=False, tied_embeddings=False)
    assert sorted({tp for tp, _, _ in parallel_degrees(model, 48)}) == [1, 2, 4, 12]
    mha = model.model_copy(update={"kv_heads": None})
    assert sorted({tp for tp, _, _ in parallel_degrees(mha, 48)}) == [1, 2, 3, 4, 6, 12]


def test_plan_ranks_layouts_of_a_small_llama() -> None:
    model = ModelSpec(name="l", layers=4, hidden=1024, heads=16, kv_heads=4, ffn_hidden=2816,
                      seq_len=2048, vocab=32000, norm="rmsnorm", mlp="swiglu",
                      positions="rotary", bias=False, tied_embeddings=False)
    train = TrainSpec(global_batch=32, precision="bf16", attention="flash")
    result = plan_layouts(load_cluster("dgx-a100"), model, train, 1)
    assert result.predictions and "layout.tp" not in " ".join(result.rejected)
    steps = [p.step_time_s / p.job.global_batch_tokens for p in result.predictions]
    assert steps == sorted(steps)
    assert {p.job.layout.tp for p in result.predictions} <= {1, 2, 4, 8}
    assert any(p.job.layout.tp == 8 for p in result.predictions)  # 4 kv heads copied twice
