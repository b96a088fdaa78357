"""Plan: the dimensions it searches (and the key/value-head rule on tp for Llama-family
models), the layouts it drops as dominated, plans for the trainer."""

from __future__ import annotations

import pytest

from fugaku_sim.errors import SpecError
from fugaku_sim.sim.plan import (
    DOMINATED,
    candidate_groups,
    least_recomputing,
    parallel_degrees,
    plan_layouts,
    trainer_runnable,
)
from fugaku_sim.sim.predict import predict
from fugaku_sim.spec import ModelSpec, TrainSpec, load_cluster
from fugaku_sim.spec.job import Job, check_modelled
from tests.sim.small import small_torus

MODEL = ModelSpec(name="m", layers=8, hidden=1024, heads=16, seq_len=2048, vocab=16000)
TRAIN = TrainSpec(global_batch=16, precision="fp32", optimizer="adam")
TIGHT = small_torus((2, 2, 2), mem_GiB=6, mem_reserved_GiB=0)  # recomputation matters here


def test_plan_searches_sequence_parallelism_recomputation_and_zero() -> None:
    result = plan_layouts(TIGHT, MODEL, TRAIN, 8)
    rows = [p.to_json() for p in result.predictions]
    assert {r["sequence_parallel"] for r in rows} == {False, True}
    assert {r["zero_stage"] for r in rows} == {0, 1, 2, 3}
    assert {r["recompute"] for r in rows} >= {"none", "selective", "first-half", "all"}
    tried = [j for g in candidate_groups(TIGHT, MODEL, TRAIN, 8) for j in g if isinstance(j, Job)]
    assert any(j.recompute_stages and j.train.selective_stage_set(j.layout.pp) for j in tried)
    assert result.rejected[DOMINATED] > 0 and result.too_big
    assert all(r["fits_memory"] for r in rows)
    assert not any(r["zero_stage"] >= 2 and r["pp"] > 1 for r in rows)  # DeepSpeed's rule


def test_a_dominated_recomputation_is_never_faster() -> None:
    """The rule the plan prunes by: with everything else equal, recomputing no less on any
    stage never shortens the step (checked on every group of one small plan)."""
    checked = 0
    for group in candidate_groups(TIGHT, MODEL, TRAIN, 8):
        jobs = [j for j in group if isinstance(j, Job) and j.layout.placement == "topology"]
        if len(jobs) < 2 or jobs[0].train.micro_batch > 1:
            continue
        kept, dominated = least_recomputing(jobs)
        best = min(predict(j).step_time_s for j in kept)
        assert all(predict(j).step_time_s >= best * (1 - 1e-9) for j in dominated)
        checked += len(dominated)
    assert checked > 20


def test_a_plan_for_the_trainer_holds_only_what_it_runs() -> None:
    """The job script's layout is the first row the trainer runs. The trainer runs every
    dimension the plan searches (sequence parallelism too), so that is the best row; with a
    feature it lacks (flash attention) no row is runnable, and the reason is named."""
    everything = plan_layouts(TIGHT, MODEL, TRAIN, 8)
    assert any(p.job.layout.sequence_parallel for p in everything.predictions)
    rank, chosen, why = trainer_runnable(everything.predictions)
    assert (rank, why) == (1, "") and chosen is everything.predictions[0]
    trainer = plan_layouts(TIGHT, MODEL, TRAIN, 8, engine="train")
    assert trainer.predictions[0].step_time_s == pytest.approx(chosen.step_time_s)
    assert any(p.job.layout.sequence_parallel for p in trainer.predictions)
    flash = plan_layouts(TIGHT, MODEL, TRAIN.model_copy(update={"attention": "flash"}), 8)
    rank, chosen, why = trainer_runnable(flash.predictions)
    assert (rank, chosen) == (0, None) and why.startswith("train.attention: flash")
    with pytest.raises(SpecError, match="not modelled by the trainer"):
        check_modelled(MODEL, flash.predictions[0].job.train, flash.predictions[0].job.layout,
                       "train")


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
