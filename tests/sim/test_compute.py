"""Compute costs agree with the FLOP counts of fugaku_sim.sim.flops."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.compute import attention_ops, backward_of, mlp_ops, op_time_s
from fugaku_sim.sim.flops import layer_forward_flops, parameter_count
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job


def fugaku_llm(tp: int = 6):
    preset = load_model_preset("fugaku-llm-13b")
    layout = {**preset.layout, "tp": tp, "job_shape": None}
    return make_job(
        load_cluster("fugaku"), preset.model, TrainSpec(**preset.train), Layout(**layout)
    )


def test_published_parameter_count() -> None:
    """Fugaku-LLM is published as a 13B model (13.2B); tolerance 2%."""
    assert parameter_count(fugaku_llm().model) == pytest.approx(13.2e9, rel=0.02)


@pytest.mark.parametrize("tp", [1, 6, 12])
def test_gemm_flops_sum_to_layer_flops(tp: int) -> None:
    job = fugaku_llm(tp)
    gemms = [op for op in attention_ops(job) + mlp_ops(job) if op.min_dim]
    tokens = job.model.seq_len * job.train.micro_batch
    assert sum(op.flops for op in gemms) * tp == pytest.approx(
        layer_forward_flops(job.model, tokens)
    )


def test_roofline_picks_the_slower_bound() -> None:
    job = fugaku_llm()
    qkv = attention_ops(job)[1]
    softmax = attention_ops(job)[3]
    node = job.cluster.node
    overhead = node.op_overhead_us * 1e-6
    assert op_time_s(qkv, job) == pytest.approx(
        qkv.flops / (node.peak_flops("fp32") * node.gemm_efficiency_at(qkv.min_dim)) + overhead
    )
    assert op_time_s(softmax, job) == pytest.approx(softmax.bytes / node.mem_bw_Bps + overhead)
    assert backward_of(qkv).flops == 2 * qkv.flops


def test_measured_elementwise_rate_replaces_the_roofline() -> None:
    """A kind and direction with a per-element rate in the profile takes elements / rate
    (per process) + overhead; the others keep the memory-traffic roofline."""
    from fugaku_sim.spec import load_model_preset

    base = load_cluster("local")
    node = base.node.model_copy(update={"elementwise_Gelem_per_s": {"gelu_fwd": 2.0}})
    cluster = base.model_copy(update={"node": node})
    preset = load_model_preset("gpt-micro")
    job = make_job(cluster, preset.model, TrainSpec(global_batch=8, micro_batch=2),
                   Layout(dp=2, processes_per_node=2))
    plain = make_job(base, preset.model, TrainSpec(global_batch=8, micro_batch=2),
                     Layout(dp=2, processes_per_node=2))
    gelu = next(op for op in mlp_ops(job) if op.name == "gelu")
    assert gelu.rate_key == "gelu_fwd" and backward_of(gelu).rate_key == "gelu_bwd"
    overhead = node.op_overhead_us * 1e-6
    assert op_time_s(gelu, job) == pytest.approx(gelu.elements / (2.0e9 / 2) + overhead)
    assert op_time_s(backward_of(gelu), job) == op_time_s(backward_of(gelu), plain)
    assert base.node.elementwise_Gelem_per_s == {}  # optional: absent means the roofline


def test_measured_optimizer_rate_replaces_the_streaming_model() -> None:
    """With ``optimizer_<kind>`` in the profile an optimizer step takes parameters / rate
    (per process) + overhead per tensor; without it, its 7 (Adam) streamed fp32 arrays."""
    from fugaku_sim.sim.compute import optimizer_rate_key, optimizer_time_s

    base = load_cluster("local")
    rates = {optimizer_rate_key("adamw"): 0.25}  # 1e9 parameters per second per node
    node = base.node.model_copy(update={"elementwise_Gelem_per_s": rates})
    preset = load_model_preset("gpt-micro")
    train = TrainSpec(global_batch=8, micro_batch=2, optimizer="adamw")
    layout = Layout(dp=2, processes_per_node=2)
    job = make_job(base.model_copy(update={"node": node}), preset.model, train, layout)
    plain = make_job(base, preset.model, train, layout)
    overhead = 10 * node.op_overhead_us * 1e-6
    assert optimizer_time_s(job, 10**6, 10) == pytest.approx(10**6 / (0.25e9 / 2) + overhead)
    assert optimizer_time_s(plain, 10**6, 10) == pytest.approx(
        10**6 * 4.0 * 7 / (base.node.mem_bw_Bps / 2) + overhead)
    sgd = make_job(base.model_copy(update={"node": node}), preset.model,
                   train.model_copy(update={"optimizer": "sgd"}), layout)
    assert optimizer_time_s(sgd, 10**6, 10) == pytest.approx(
        10**6 * 4.0 * 3 / (base.node.mem_bw_Bps / 2) + overhead)  # only adamw was measured


@pytest.mark.parametrize("tp", [1, 6])
def test_embedding_forward_all_reduces_the_vocabulary_shards(tp: int) -> None:
    """The first stage's forward starts with the embedding lookup, then (tp > 1) the
    all-reduce of the hidden states each tensor rank looked up from its vocabulary shard;
    the backward has none (Megatron-LM VocabParallelEmbedding; the trainer's embed_forward)."""
    from fugaku_sim.sim.compute import activation_message_bytes, stage_segments

    job = fugaku_llm(tp)
    forward = stage_segments(job, 0, "F", 1, first=True, last=False)
    plain = stage_segments(job, 0, "F", 1, first=False, last=False)
    assert forward[0].kind == "compute"
    extra = forward[1:2] if tp > 1 else []
    assert [(g.kind, g.nbytes) for g in extra] == (
        [("tp", activation_message_bytes(job))] if tp > 1 else [])
    assert forward[1 + len(extra):] == plain
    backward = stage_segments(job, 0, "B", 1, first=True, last=False)
    assert sum(g.kind == "tp" for g in backward) == sum(
        g.kind == "tp" for g in stage_segments(job, 0, "B", 1, first=False, last=False))


@pytest.mark.parametrize("tp", [1, 6])
def test_embedding_backward_accumulates_the_table_shard(tp: int) -> None:
    """The first stage's backward ends with the embedding's: the lookups' backward, then the
    gradient of the tensor rank's [V / t, C] table shard, 4 passes over it (zeroed, then
    read with the gradient and written; PyTorch's embedding_dense_backward + accumulation)."""
    from fugaku_sim.sim.compute import (
        embedding_backward_ops,
        embedding_forward_ops,
        local_weight,
        stage_segments,
    )
    from fugaku_sim.tensors import WTE

    job = fugaku_llm(tp)
    *lookups, table = embedding_backward_ops(job)
    assert lookups == [backward_of(op) for op in embedding_forward_ops(job)]
    rows, hidden = local_weight(job, WTE)
    assert hidden == job.model.hidden and rows == pytest.approx(job.model.vocab / tp, abs=tp)
    assert table.elements == rows * hidden and table.min_dim == 0
    assert (table.bytes, table.rate_key) == (4 * 4.0 * rows * hidden, "embedding_bwd")  # fp32
    backward = stage_segments(job, 0, "B", 1, first=True, last=False)
    plain = stage_segments(job, 0, "B", 1, first=False, last=False)
    assert backward[:-1] == plain
    assert backward[-1].seconds == pytest.approx(
        sum(op_time_s(op, job) for op in lookups + [table]))
