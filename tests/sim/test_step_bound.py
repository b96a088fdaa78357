"""The step-time lower bounds hold against the engine for every layout a plan predicts, and
a plan that prunes with them finds the same fastest layouts as one that does not."""

from __future__ import annotations

import math

import pytest

from fugaku_sim.sim.plan import plan_layouts
from fugaku_sim.sim.predict import predict, prepare
from fugaku_sim.sim.step_bound import FastModeBound, step_lower_bound_s
from fugaku_sim.spec import ModelSpec, TrainSpec, load_cluster
from tests.sim.small import small_job, small_torus

MODEL = ModelSpec(name="m", layers=8, hidden=512, heads=8, seq_len=256, vocab=8000)
#: Llama-shaped, grouped-query attention with fewer key/value heads than some tensor degrees
LLAMA = ModelSpec(name="l", layers=8, hidden=512, heads=8, kv_heads=2, ffn_hidden=1376,
                  seq_len=256, vocab=8000,
                  norm="rmsnorm", mlp="swiglu", positions="rotary", tied_embeddings=False,
                  bias=False)
#: float sums in another order than the engine's: a bound may exceed by rounding only
ROUNDING = 1 + 1e-9

# (cluster, nodes, model, train settings, interleaved): a torus, a GPU cluster with 8 processes
# a node, Fugaku's small group (non-contiguous nodes) with 4 processes a node, overlap and
# ZeRO-1, a Llama-shaped model with flash attention
PLANS = [
    (small_torus((2, 2, 2)), 8, MODEL, {"global_batch": 32}, True),
    (load_cluster("dgx-a100"), 2, MODEL, {"global_batch": 64, "precision": "bf16"}, True),
    (load_cluster("fugaku").model_copy(update={"node": load_cluster("fugaku").node.model_copy(
        update={"processes_per_node": 4})}), 4, MODEL, {"global_batch": 32}, False),
    (small_torus((2, 2, 2)), 8, MODEL, {"global_batch": 16, "overlap_grad_reduce": True,
                                         "zero_stage": 1}, False),
    (small_torus((2, 2, 2)), 8, LLAMA, {"global_batch": 32, "attention": "flash"}, False),
]


@pytest.mark.parametrize(("cluster", "nodes", "model", "train", "interleaved"), PLANS,
                         ids=["torus", "dgx-a100", "fugaku-noncont", "overlap-zero1", "llama-gqa"])
def test_bounds_hold_for_every_predicted_layout(cluster, nodes, model, train,
                                                interleaved) -> None:
    full = plan_layouts(cluster, model, TrainSpec(**train), nodes, interleaved=interleaved)
    assert len(full.predictions) > 10
    for pred in full.predictions:
        quick = step_lower_bound_s(pred.job)
        tight = step_lower_bound_s(pred.job, prepare(pred.job))
        assert quick <= tight * ROUNDING, pred.job.layout
        assert tight <= pred.step_time_s * ROUNDING, (pred.job.layout, pred.job.train)
    pruned = plan_layouts(cluster, model, TrainSpec(**train), nodes, interleaved=interleaved,
                          best=3, bound=FastModeBound())
    assert [p.step_time_s for p in pruned.predictions[:3]] == \
        [p.step_time_s for p in full.predictions[:3]]
    assert pruned.pruned > 0 and len(pruned.predictions) + pruned.pruned <= len(full.predictions)


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_fill_and_drain_bound_is_tight_without_communication(schedule: str) -> None:
    """Equal stages, no tensor parallelism, one replica: the engine's step is the classic
    (m + p - 1) passes plus the last stage's sends, so the bound is within the sends."""
    job = small_job(small_torus((4, 1, 1)), 1, 4, 1, global_batch=8, schedule=schedule)
    step = predict(job).step_time_s
    bound = step_lower_bound_s(job, prepare(job))
    assert bound <= step * ROUNDING
    assert bound > 0.9 * step


def test_tight_bound_stops_at_the_cutoff() -> None:
    job = small_job(small_torus((2, 2, 2)), 2, 4, 1, global_batch=16)
    setup = prepare(job)
    full = step_lower_bound_s(job, setup)
    assert step_lower_bound_s(job, setup, cutoff_s=math.inf) == full
    early = step_lower_bound_s(job, setup, cutoff_s=full / 10)
    assert full / 10 <= early <= full


def test_bounds_hold_on_a_fitted_stack() -> None:
    """On the 2023 Fugaku stack (slow non-GEMM ops, kernel and step overheads, slow
    collectives) the bounds stay below the engine, and the stack's overheads make the tight
    bound larger than on the ideal stack by at least the step overhead."""
    from dataclasses import replace

    from fugaku_sim.spec.stack import load_stack, with_values

    stack = with_values(load_stack("deepspeedfugaku-2023"), {"micro_batch_overhead_s": 0.01})
    plan = plan_layouts(small_torus((2, 2, 2)), MODEL, TrainSpec(global_batch=32), 8,
                        stack=stack)
    assert len(plan.predictions) > 10
    for pred in plan.predictions:
        setup = prepare(pred.job)
        tight = step_lower_bound_s(pred.job, setup)
        assert step_lower_bound_s(pred.job) <= tight * ROUNDING
        assert tight <= pred.step_time_s * ROUNDING, (pred.job.layout, pred.job.train)
        ideal = replace(pred.job, stack=load_stack("ideal"))
        assert tight >= step_lower_bound_s(ideal, setup) + stack.step_overhead_s
