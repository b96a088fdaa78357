"""Segments of a pass: where the collectives sit (tensor and sequence parallelism), selective
recomputation, ZeRO's data-parallel stream, and the fast mode's price of a pass."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import simpy

from fugaku_sim.parallel import stage_chunks
from fugaku_sim.sim import segments as segments_module
from fugaku_sim.sim.compute import (
    attention_core_ops,
    attention_ops,
    mlp_ops,
    op_time_s,
    residual_op,
)
from fugaku_sim.sim.predict import prepare
from fugaku_sim.sim.segments import (
    PassBuilder,
    Segment,
    activation_message_bytes,
    layer_backward,
    layer_forward,
    p2p_message_bytes,
    sequence_shard,
    split_at_gemm,
    stage_segments,
    time_pass,
)
from fugaku_sim.sim.transport import AnalyticTransport
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import chunk_parameters
from tests.sim.small import small_job, small_torus


def job_of(tp: int = 4, pp: int = 1, dp: int = 2, **kw: Any) -> Job:
    return small_job(small_torus((2, 2, 2)), tp, pp, dp, **kw)


def layer(job: Job, backward: bool = False, selective: bool = False) -> list[Segment]:
    b = PassBuilder(job)
    layer_backward(b, selective) if backward else layer_forward(b)
    b.flush()
    return b.out


def collectives(segs: list[Segment]) -> list[tuple[str, str, bool]]:
    return [(g.kind, g.op, bool(g.stream)) for g in segs if g.kind in ("tp", "dp")]


def test_time_pass_overlaps_started_collectives_and_charges_what_waits_expose() -> None:
    """compute 1 | start A (2 s) | compute 1 | start B (2 s, queued behind A) | wait A |
    compute 0.5 | wait B: A runs 1-3, B 3-5; the first wait exposes 1 s, the second 1.5 s."""
    segs = [Segment("compute", seconds=1.0), Segment("dp", nbytes=1, stream="dp", handle=0),
            Segment("compute", seconds=1.0), Segment("dp", nbytes=1, stream="dp", handle=1),
            Segment("wait", handle=0), Segment("compute", seconds=0.5, recompute=True),
            Segment("wait", handle=1), Segment("tp", nbytes=1)]
    t = time_pass(segs, "compute", lambda g: 2.0 if g.kind == "dp" else 0.25)
    assert t.seconds == pytest.approx(5.25)
    assert t.charges == pytest.approx(
        {"compute": 2.0, "dp_comm": 2.5, "recompute": 0.5, "tp_comm": 0.25})
    assert [(p.lane, p.start, p.seconds) for p in t.pieces] == [
        ("compute", 0.0, 1.0), ("comm", 1.0, 2.0), ("compute", 1.0, 1.0), ("comm", 3.0, 2.0),
        ("compute", 3.0, 0.5), ("comm", 5.0, 0.25)]


def test_tensor_parallel_layer_all_reduces_twice_each_way() -> None:
    job = job_of()
    assert collectives(layer(job)) == [("tp", "allreduce", False)] * 2
    assert collectives(layer(job, backward=True)) == [("tp", "allreduce", False)] * 2
    forward = [g.seconds for g in layer(job) if g.kind == "compute"]
    ops = attention_ops(job), mlp_ops(job)
    assert forward[:2] == [sum(op_time_s(op, job) for op in o) for o in ops]


def test_sequence_parallel_layer_gathers_and_scatters_as_megatron() -> None:
    """Forward: all-gather before QKV and fc1, reduce-scatter after the projection and fc2.
    Backward: an all-gather of the output gradient before each block's backward; at QKV and
    fc1 the input re-gather and the input-gradient reduce-scatter run beside the compute."""
    job = job_of(sequence_parallel=True)
    msg = activation_message_bytes(job)
    fwd = layer(job)
    assert collectives(fwd) == [("tp", "all_gather", False), ("tp", "reduce_scatter", False)] * 2
    assert {g.nbytes for g in fwd if g.kind == "tp"} == {msg}
    bwd = layer(job, backward=True)
    block = [("tp", "all_gather", False), ("tp", "all_gather", True),
             ("tp", "reduce_scatter", True)]
    assert collectives(bwd) == block * 2
    assert sum(g.kind == "wait" for g in bwd) == 4
    # the norms, dropouts and residuals run on T / t tokens, the rest as without
    plain = sum(g.seconds for g in layer(job_of()) if g.kind == "compute")
    sharded = sum(g.seconds for g in fwd if g.kind == "compute")
    region = [*split_at_gemm(attention_ops(job))[0], *split_at_gemm(mlp_ops(job))[0],
              residual_op(job)]
    assert plain - sharded == pytest.approx(
        sum(op_time_s(op, job) - op_time_s(sequence_shard(op, 4), job) for op in region))
    assert plain > sharded


def test_pipeline_message_is_the_sequence_shard() -> None:
    assert p2p_message_bytes(job_of(sequence_parallel=True)) == p2p_message_bytes(job_of()) / 4


def test_selective_recompute_reruns_the_attention_core_in_the_backward() -> None:
    job = job_of(recompute="selective")
    bwd = layer(job, backward=True, selective=True)
    rerun = [g for g in bwd if g.recompute]
    core = attention_core_ops(job)
    assert [op.name for op in core] == ["scores", "softmax", "attn_values"]
    assert len(rerun) == 1 and rerun[0].seconds == pytest.approx(
        sum(op_time_s(op, job) for op in core))
    plain = sum(g.seconds for g in layer(job, backward=True) if g.kind == "compute")
    assert sum(g.seconds for g in bwd if g.kind == "compute") == pytest.approx(
        plain + rerun[0].seconds)


def chunk0(job: Job, stage: int = 0) -> Any:
    lay = job.layout
    return stage_chunks(job.model.layers, lay.pp, stage, lay.virtual_stages)[0]


@pytest.mark.parametrize("bucket_MB", [1.0, 25.0, 1e4])
def test_zero2_reduce_scatters_every_gradient_once_per_backward(bucket_MB: float) -> None:
    job = job_of(tp=2, pp=2, dp=2, zero_stage=2)
    job = make_job(job.cluster, job.model,
                   job.train.model_copy(update={"grad_bucket_MB": bucket_MB}), job.layout)
    for stage in (0, 1):
        segs = stage_segments(job, stage, "B", chunk0(job, stage))
        reductions = [g for g in segs if g.kind == "dp"]
        grads = chunk_parameters(job.model, job.layout, stage)[0] * element_bytes("fp32")
        assert sum(g.nbytes for g in reductions) == pytest.approx(grads)
        assert all(g.op == "reduce_scatter" and g.stream for g in reductions)
        assert all(g.nbytes >= bucket_MB * 2**20 for g in reductions[:-1])
        assert segs[-1].kind == "wait"  # the backward ends when its last bucket is reduced
        assert not any(g.kind == "dp" for g in stage_segments(job, stage, "F", chunk0(job)))


def test_zero3_gathers_every_unit_before_its_forward_and_backward() -> None:
    job = job_of(tp=2, pp=1, dp=4, zero_stage=3)
    params = chunk_parameters(job.model, job.layout, 0)[0] * element_bytes("fp32")
    for kind in ("F", "B"):
        segs = stage_segments(job, 0, kind, chunk0(job))  # type: ignore[arg-type]
        gathers = [g for g in segs if g.kind == "dp" and g.op == "all_gather"]
        assert sum(g.nbytes for g in gathers) == pytest.approx(params)
        assert not gathers[0].stream and all(g.stream for g in gathers[1:])  # prefetched
        assert segs[0].kind == "dp"  # the first unit's gather blocks
    backward = stage_segments(job, 0, "B", chunk0(job))
    assert sum(g.nbytes for g in backward if g.op == "reduce_scatter") == pytest.approx(params)


LAYOUTS = [dict(tp=2, pp=2, dp=2), dict(tp=2, pp=2, dp=2, sequence_parallel=True),
           dict(tp=2, pp=1, dp=4, zero_stage=3, sequence_parallel=True),
           dict(tp=2, pp=2, dp=2, zero_stage=2),
           dict(tp=2, pp=2, dp=2, sequence_parallel=True, recompute="selective",
                recompute_stages=[0])]


@pytest.mark.parametrize("kw", LAYOUTS)
def test_layers_built_once_give_the_segments_of_layers_built_one_by_one(
        kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A memo shared over every stage and pass of a job (as the engine keeps it) builds each
    kind of layer once and gives exactly the segments of every layer built on its own,
    started collectives numbered on (sequence parallelism's overlapped backward, ZeRO)."""
    job = job_of(**kw)
    passes = [(stage, kind) for stage in range(job.layout.pp) for kind in ("F", "B")]
    shared: dict[tuple[object, ...], tuple[list[Segment], int]] = {}
    memoised = [stage_segments(job, s, k, chunk0(job, s), shared)  # type: ignore[arg-type]
                for s, k in passes]
    units = segments_module.chunk_units
    monkeypatch.setattr(segments_module, "chunk_units",
                        lambda *a: [replace(u, key=None) for u in units(*a)])
    one_by_one = [stage_segments(job, s, k, chunk0(job, s))  # type: ignore[arg-type]
                  for s, k in passes]
    assert memoised == one_by_one
    assert len(shared) == len({(k, s in job.train.selective_stage_set(job.layout.pp))
                               for s, k in passes})
    handles = [g.handle for g in memoised[-1] if g.stream]
    assert handles == sorted(set(handles))  # distinct, in the order started


#: Korthikanti et al. 2022, Table 4: forward and backward of one layer of the 22B model
#: (TP 8, micro-batch 4, sequence 2048) on an A100, milliseconds; the backward of the full
#: recomputation row includes its recomputed forward.
TABLE_4 = [("none", False, 7.7, 11.9), ("none", True, 7.2, 11.8), ("all", False, 7.7, 19.5),
           ("selective", False, 7.7, 13.2), ("selective", True, 7.2, 13.1)]


@pytest.mark.parametrize(("recompute", "sp", "forward_ms", "backward_ms"), TABLE_4)
def test_table_4_layer_times_of_the_22b_model(
        recompute: str, sp: bool, forward_ms: float, backward_ms: float) -> None:
    """Per-layer time within 10% of the published forward + backward; the profile
    (clusters/dgx-a100.yaml) was not fitted to it."""
    model = ModelSpec(name="gpt-22b", layers=48, hidden=6144, heads=64, seq_len=2048,
                      vocab=51200)
    job = make_job(load_cluster("dgx-a100"), model,
                   TrainSpec(global_batch=4, micro_batch=4, precision="fp16", recompute=recompute),
                   Layout(tp=8, sequence_parallel=sp))
    transport = AnalyticTransport(simpy.Environment(), job, prepare(job).comm)
    assert transport.analytic

    def price(g: Segment) -> float:
        return transport.tp_time_s(0, g.nbytes, g.op)

    forward = time_pass(layer(job), "compute", price).seconds
    backward = time_pass(layer(job, backward=True, selective=recompute == "selective"),
                         "compute", price).seconds + (forward if recompute == "all" else 0.0)
    assert (forward + backward) * 1e3 == pytest.approx(forward_ms + backward_ms, rel=0.10)


@pytest.mark.parametrize("sp", [False, True])
def test_embedding_sums_the_vocabulary_shards_over_the_tensor_group(sp: bool) -> None:
    """The first chunk's forward: the lookup, then the sum of the ranks' vocabulary shards,
    an all-reduce (a reduce-scatter into the sequence-parallel region), before the first
    layer; its backward ends with the embedding's (the table gradient included), after an
    all-gather of the gradient under sequence parallelism only (Megatron-LM
    VocabParallelEmbedding; the trainer's embed_forward)."""
    from dataclasses import replace

    from fugaku_sim.sim.compute import embedding_backward_ops, embedding_forward_ops

    job = job_of(sequence_parallel=sp)
    first = chunk0(job)
    inner = replace(first, first=False)
    msg = activation_message_bytes(job)
    forward = stage_segments(job, 0, "F", first)
    assert forward[0].seconds == pytest.approx(
        sum(op_time_s(op, job) for op in embedding_forward_ops(job)))
    assert (forward[1].kind, forward[1].op, forward[1].nbytes) == (
        "tp", "reduce_scatter" if sp else "allreduce", msg)
    assert forward[2:] == stage_segments(job, 0, "F", inner)
    backward = stage_segments(job, 0, "B", first)
    plain = stage_segments(job, 0, "B", inner)
    tail = backward[len(plain):]
    assert backward[:len(plain)] == plain
    assert [(g.kind, g.op) for g in tail[:-1]] == ([("tp", "all_gather")] if sp else [])
    assert tail[-1].seconds == pytest.approx(
        sum(op_time_s(op, job) for op in embedding_backward_ops(job)))
    single = job_of(tp=1, dp=8)
    assert not any(g.kind == "tp" for g in stage_segments(single, 0, "F", chunk0(single))[:2])
