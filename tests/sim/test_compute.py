"""Compute costs agree with the FLOP counts of fugaku_sim.sim.flops."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.compute import (
    ELEMENTWISE_KINDS,
    attention_ops,
    backward_of,
    embedding_forward_ops,
    head_forward_ops,
    mlp_ops,
    op_time_s,
    residual_op,
)
from fugaku_sim.sim.flops import layer_forward_flops, parameter_count
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, load_model_preset, make_job


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
def test_embedding_backward_accumulates_the_table_shard(tp: int) -> None:
    """The embedding's backward: the lookups' backward, then the gradient of the tensor
    rank's [V / t, C] table shard, 4 passes over it (zeroed, then read with the gradient and
    written; PyTorch's embedding_dense_backward + accumulation), at the embedding's rate."""
    from fugaku_sim.sim.compute import embedding_backward_ops
    from fugaku_sim.tensors import WTE, tensor_table

    job = fugaku_llm(tp)
    *lookups, table = embedding_backward_ops(job)
    assert lookups == [backward_of(op) for op in embedding_forward_ops(job)]
    rows, hidden = tensor_table(job.model)[WTE].local_shape(tp)
    assert hidden == job.model.hidden and rows == pytest.approx(job.model.vocab / tp, abs=tp)
    assert table.elements == rows * hidden and table.min_dim == 0
    assert (table.bytes, table.rate_key) == (4 * 4.0 * rows * hidden, "embedding_bwd")  # fp32


def llama_job(tp: int = 1, kv_heads: int = 8, attention: str = "materialized", pp: int = 1,
              micro_batch: int = 1):
    """A 4-layer Llama-3-shaped model (hidden 4096, 32 heads, 8 key/value heads) on DGX A100."""
    model = ModelSpec(name="llama", layers=4, hidden=4096, heads=32, kv_heads=kv_heads,
                      ffn_hidden=14336, seq_len=2048, vocab=128256, norm="rmsnorm",
                      mlp="swiglu", positions="rotary", bias=False, tied_embeddings=False)
    train = TrainSpec(global_batch=8 * micro_batch, micro_batch=micro_batch, precision="bf16",
                      attention=attention)  # type: ignore[arg-type]
    return make_job(load_cluster("dgx-a100"), model, train, Layout(tp=tp, pp=pp, dp=8 // (tp * pp)))


def names(ops) -> list[str]:
    return [op.name for op in ops]


def test_llama_block_ops() -> None:
    job = llama_job()
    assert names(attention_ops(job)) == ["rmsnorm1", "q", "k", "v", "rotary", "scores", "softmax",
                                         "attn_values", "projection"]
    assert names(mlp_ops(job)) == ["residual1", "rmsnorm2", "gate", "up", "silu", "gate_mul",
                                   "down"]
    assert residual_op(job).name == "residual2"
    assert names(embedding_forward_ops(job)) == ["embedding"]  # no position table, no dropout
    assert names(head_forward_ops(job)) == ["final_rmsnorm", "lm_head", "cross_entropy"]
    gpt = fugaku_llm()
    assert names(attention_ops(gpt)) == ["layernorm1", "qkv", "scores", "softmax",
                                         "attn_values", "projection"]
    assert names(mlp_ops(gpt)) == ["dropout_residual1", "layernorm2", "fc1", "gelu", "fc2"]


def test_a_gpt_without_dropout_has_no_dropout_ops() -> None:
    """``model.dropout`` 0 (the numpy trainer's GPT-2): no dropout ops in the blocks, and the
    softmax without its dropout (4 FLOPs, 2 passes per element instead of 5, 3)."""
    gpt = fugaku_llm()
    none = make_job(gpt.cluster, gpt.model.model_copy(update={"dropout": 0.0}), gpt.train,
                    gpt.layout)
    everything = [*attention_ops(none), *mlp_ops(none), residual_op(none)]
    assert not any("dropout" in op.name for op in everything)
    assert names(mlp_ops(none))[0] == "residual1"
    soft, soft_none = (next(op for op in attention_ops(j) if op.name == "softmax")
                       for j in (gpt, none))
    assert soft_none.flops / soft.flops == pytest.approx(4 / 5)
    assert soft_none.bytes / soft.bytes == pytest.approx(2 / 3)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_llama_gemm_flops_sum_to_layer_flops(tp: int) -> None:
    """Where the 8 key/value heads split over tp, the ranks' GEMMs add up to the block."""
    job = llama_job(tp)
    gemms = [op for op in attention_ops(job) + mlp_ops(job) if op.min_dim]
    tokens = job.model.seq_len * job.train.micro_batch
    assert sum(op.flops for op in gemms) * tp == pytest.approx(
        layer_forward_flops(job.model, tokens))


def test_grouped_query_attention_shapes() -> None:
    """k and v have kv_heads x D columns (a copied head each when fewer than tp); the scores
    are over every query head of the rank."""
    b, s, c, d = 1, 2048, 4096, 128
    for tp, kv_heads, kv_local in [(1, 8, 8), (4, 8, 2), (8, 8, 1), (8, 2, 1), (4, 32, 8)]:
        ops = {op.name: op for op in attention_ops(llama_job(tp, kv_heads))}
        assert ops["q"].flops == 2 * b * s * c * (32 // tp) * d
        assert ops["k"].flops == ops["v"].flops == 2 * b * s * c * kv_local * d
        assert ops["scores"].flops == 2 * s * s * d * b * (32 // tp)
        assert ops["rotary"].elements == b * s * (32 // tp + kv_local) * d


def test_rmsnorm_swiglu_and_rotary_elementwise() -> None:
    """RMSNorm: the layer norm's traffic with half its FLOPs; SwiGLU's SiLU and product over
    the rank's F/t; each kind has its own rate key in both directions."""
    llama, gpt = attention_ops(llama_job())[0], attention_ops(fugaku_llm(1))[0]
    assert llama.kind == "rmsnorm" and llama.flops == 4 * llama.elements
    assert gpt.kind == "layernorm" and gpt.flops == 8 * gpt.elements
    assert llama.bytes == 2 * 2 * llama.elements  # bf16, one read and one write
    mlp = {op.name: op for op in mlp_ops(llama_job(4))}
    assert mlp["silu"].elements == mlp["gate_mul"].elements == 2048 * 14336 / 4
    assert mlp["gate_mul"].bytes == 3 * 2 * mlp["gate_mul"].elements
    keys = {op.rate_key for op in attention_ops(llama_job()) + mlp_ops(llama_job())} - {""}
    assert keys == {"rmsnorm_fwd", "rotary_fwd", "softmax_fwd", "residual_fwd", "silu_fwd",
                    "gate_mul_fwd"}
    assert backward_of(mlp["silu"]).rate_key == "silu_bwd"
    assert {"rmsnorm", "rotary", "silu", "gate_mul"} <= set(ELEMENTWISE_KINDS)


def test_flash_attention_replaces_the_materialized_core() -> None:
    """One fused op for scores, softmax and values: half the 4 B A T^2 D FLOPs (causal), 2.5x
    that backward, no T x T traffic (Dao 2023)."""
    flat = {op.name: op for op in attention_ops(llama_job(2))}
    fused = {op.name: op for op in attention_ops(llama_job(2, attention="flash"))}
    assert "flash_attention" in fused and not {"scores", "softmax", "attn_values"} & set(fused)
    flash = fused["flash_attention"]
    assert flash.flops == pytest.approx((flat["scores"].flops + flat["attn_values"].flops) / 2)
    assert backward_of(flash).flops == 2.5 * flash.flops
    assert flash.min_dim == 128  # priced on the GEMM curve at the head size, as the scores are
    b, s, d, q, kv = 1, 2048, 128, 16, 4
    assert flash.bytes == 2 * b * s * d * (2 * q + 2 * kv) + 4 * b * q * s
    assert flash.bytes < flat["softmax"].bytes / 10
    assert names(attention_ops(fugaku_llm(6)))[2:5] == ["scores", "softmax", "attn_values"]
