"""Memory per rank: Korthikanti et al.'s activation counts (the tensor-by-tensor count gives
eq. 2 back for a GPT layer, prices Llama layers and flash attention, and table 2's sequence
parallel and selective rows), the ZeRO stages, the parts of a rank's peak."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fugaku_sim.sim.memory import (
    GiB,
    activation_bytes_per_layer,
    kept_activations,
    memory_by_stage,
    parameter_bytes,
    stage_memory,
)
from fugaku_sim.sim.predict import predict
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.breakdown import MEMORY_KEYS
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.stack import with_values
from fugaku_sim.tensors import stage_parameters
from tests.sim.small import small_job, small_torus


def job_of(model: ModelSpec, tp: int, precision: str = "fp16", attention: str = "materialized",
           micro_batch: int = 2) -> Job:
    train = TrainSpec(global_batch=8 * micro_batch, micro_batch=micro_batch,
                      precision=precision, attention=attention)  # type: ignore[arg-type]
    return make_job(load_cluster("dgx-a100"), model, train, Layout(tp=tp, dp=8 // tp))


GPT = ModelSpec(name="gpt", layers=2, hidden=2048, heads=16, seq_len=1024, vocab=51200)
LLAMA_3_8B = ModelSpec(name="l3", layers=2, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336,
                       seq_len=8192, vocab=128256, norm="rmsnorm", mlp="swiglu",
                       positions="rotary", bias=False, tied_embeddings=False)


def korthikanti_eq2(job: Job) -> float:
    """Korthikanti et al. 2022, eq. 2: s b h (10 + 24/t + 5 a s/(h t)), 16-bit activations."""
    m, t = job.model, job.layout.tp
    s, b, h, a = m.seq_len, job.train.micro_batch, m.hidden, m.heads
    return s * b * h * (10 + 24 / t + 5 * a * s / (h * t))


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_the_tensor_count_gives_eq2_for_gpt(tp: int, precision: str) -> None:
    job = job_of(GPT, tp, precision)
    scale = 2 if precision == "fp32" else 1
    assert sum(kept_activations(job).values()) == pytest.approx(korthikanti_eq2(job) * scale)
    assert activation_bytes_per_layer(job, "none") == pytest.approx(
        korthikanti_eq2(job) * scale)


def test_llama_layer_by_hand() -> None:
    """Llama-3-8B's layer at tp 1, one 8,192-token sequence in bf16: norms' inputs and outputs
    8 s h, queries and the 8 key/value heads repeated for their 4 query heads each 3 x 2 s
    4096, projection input 2 s 4096, SwiGLU 3 x 2 s 14336, softmax output 2 A s^2; no dropout
    masks. The flash kernel keeps the key/value heads as they are: 2 s (4096 + 2 x 1024)."""
    s = 8192
    job = job_of(LLAMA_3_8B, 1, "bf16", micro_batch=1)
    want = s * (8 * 4096 + 6 * 4096 + 2 * 4096 + 6 * 14336) + 2 * 32 * s * s
    assert activation_bytes_per_layer(job, "none") == want
    assert "residual dropout masks" not in kept_activations(job)
    flash = job_of(LLAMA_3_8B, 4, "bf16", attention="flash", micro_batch=1)  # 2 kv heads a rank
    assert kept_activations(flash)["queries, keys, values"] == 2 * s * (1024 + 2 * 256)
    assert activation_bytes_per_layer(job, "full") == 2 * s * 4096


def test_flash_attention_keeps_no_scores() -> None:
    """Flash attention keeps the fp32 log-sum-exp per query instead of the T x T scores."""
    job = job_of(LLAMA_3_8B, 2, "bf16", attention="flash", micro_batch=1)
    kept = kept_activations(job)
    assert "attention probabilities" not in kept
    assert kept["attention log-sum-exp"] == 4 * 16 * 8192
    materialized = job_of(LLAMA_3_8B, 2, "bf16", micro_batch=1)
    gap = (activation_bytes_per_layer(materialized, "none") - activation_bytes_per_layer(job, "none"))
    repeated_kv = 2 * 8192 * 2 * (2048 - 512)  # materialized keeps 16 repeated k and v heads, not 4
    assert gap == pytest.approx(2 * 16 * 8192**2 - 4 * 16 * 8192 + repeated_kv)
    gpt_flash = job_of(GPT, 2, attention="flash")  # GPT-2 with flash: eq. 2 without 5 a s^2 b/t
    assert activation_bytes_per_layer(gpt_flash, "none") == pytest.approx(
        korthikanti_eq2(gpt_flash) - 5 * 8 * 1024**2 * 2 + 4 * 8 * 1024 * 2)


GPT3 = ModelSpec(name="gpt3", layers=96, hidden=12288, heads=96, seq_len=2048, vocab=51200)


def gpt3_job(precision: str = "fp16", recompute: str = "none", sp: bool = False) -> Job:
    return make_job(load_cluster("dgx-a100"), GPT3,
                    TrainSpec(global_batch=64, micro_batch=1, precision=precision,  # type: ignore[arg-type]
                              recompute=recompute),  # type: ignore[arg-type]
                    Layout(tp=8, pp=8, sequence_parallel=sp))


@pytest.mark.parametrize(("mode", "sp", "per_sbh"), [
    # Korthikanti et al. 2022, table 2, bytes per layer over s b h in 16 bits (a s / h = 16)
    ("none", False, 10 + 24 / 8 + 5 * 16 / 8),
    ("none", True, 34 / 8 + 5 * 16 / 8),
    ("selective", False, 10 + 24 / 8),
    ("selective", True, 34 / 8),
    ("full", False, 2),
    ("full", True, 2 / 8),  # the checkpointed input is the sequence-parallel hidden state
])
def test_korthikanti_table_2_in_16_bits(mode: str, sp: bool, per_sbh: float) -> None:
    job = gpt3_job(sp=sp)
    sbh = 2048 * 1 * 12288
    assert activation_bytes_per_layer(job, mode) == pytest.approx(per_sbh * sbh)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["none", "selective", "full"])
@pytest.mark.parametrize("sp", [False, True])
def test_fp32_doubles_every_count(mode: str, sp: bool) -> None:
    """The paper's byte counts scaled to the training precision, as eq. 2 is."""
    half, full = gpt3_job("fp16", sp=sp), gpt3_job("fp32", sp=sp)
    assert activation_bytes_per_layer(full, mode) == pytest.approx(  # type: ignore[arg-type]
        2 * activation_bytes_per_layer(half, mode))  # type: ignore[arg-type]


def test_sequence_parallelism_and_selective_recomputation_on_a_llama_layer() -> None:
    """On the tensor-by-tensor count: sequence parallelism splits the norms' inputs and
    outputs over t; selective recomputation drops the attention probabilities (materialized)
    or the log-sum-exp (flash)."""
    base = job_of(LLAMA_3_8B, 4, "bf16", micro_batch=1)
    kept = kept_activations(base)
    sp = make_job(base.cluster, base.model, base.train,
                  base.layout.model_copy(update={"sequence_parallel": True}))
    norms = kept["norm inputs and outputs"]
    assert activation_bytes_per_layer(sp, "none") == pytest.approx(
        sum(kept.values()) - norms * (1 - 1 / 4))
    assert activation_bytes_per_layer(base, "selective") == pytest.approx(
        sum(kept.values()) - kept["attention probabilities"])


def test_stage_keeps_its_micro_batches_in_flight_of_its_layers() -> None:
    job = gpt3_job(recompute="selective", sp=True)
    first = stage_memory(job, 0)
    assert first.micro_batches_in_flight == 8 and first.recompute == "selective"
    assert first.activations == pytest.approx(8 * 12 * activation_bytes_per_layer(job, "selective"))


def zero_job(zero: int, **kw: Any) -> Job:
    return small_job(small_torus((2, 2, 2)), 2, 1, 4, zero_stage=zero, **kw)


def test_zero_stages_shard_states_then_gradients_then_weights() -> None:
    parts = {z: stage_memory(zero_job(z), 0) for z in range(4)}
    job = zero_job(0)
    params = stage_parameters(job.model, job.layout, 0)
    w, g, o = parameter_bytes(job.train)
    bucket = job.train.grad_bucket_MB * 2**20
    assert (parts[0].weights, parts[0].gradients, parts[0].optimizer) == (
        params * w, params * g, params * o)
    assert parts[1].optimizer == pytest.approx(params * o / 4)
    assert parts[1].gradients == parts[0].gradients
    assert parts[2].gradients == pytest.approx(params * g / 4 + bucket)
    assert parts[2].weights == parts[0].weights
    assert params * w / 4 < parts[3].weights < parts[0].weights  # shard + the gathered units
    assert [parts[z].total for z in range(4)] == sorted((parts[z].total for z in range(4)),
                                                         reverse=True)


def test_zero3_holds_the_root_two_blocks_and_a_unit_of_gradients() -> None:
    """ZeRO-3 as PyTorch FSDP (and the trainer) runs it: beside its shard a rank holds the
    root (embeddings, final norm, head) gathered for the micro-batch, the block it computes
    and the one prefetched; a unit's gradients are the bucket being reduce-scattered, with
    two more in flight under overlap (``ZERO_BUCKETS_IN_FLIGHT``)."""
    from fugaku_sim.spec.train import ZERO_BUCKETS_IN_FLIGHT
    from fugaku_sim.tensors import tensor_table

    job = zero_job(3)
    table = tensor_table(job.model)
    block = sum(r.local_size(2) for r in table.block(0))
    root = stage_parameters(job.model, job.layout, 0) - job.model.layers * block
    params = stage_parameters(job.model, job.layout, 0)
    w, g, _ = parameter_bytes(job.train)
    m = stage_memory(job, 0)
    assert m.weights == pytest.approx(params * w / 4 + (root + 2 * block) * w)
    assert m.gradients == pytest.approx(params * g / 4 + max(root, block) * g)
    overlap = stage_memory(zero_job(3, overlap_grad_reduce=True), 0)
    assert overlap.gradients == pytest.approx(
        params * g / 4 + (1 + ZERO_BUCKETS_IN_FLIGHT) * max(root, block) * g)
    assert overlap.weights == m.weights


def test_zero_shards_nothing_over_one_data_parallel_rank() -> None:
    """As the trainer: with dp = 1 there is nothing to shard, and no bucket is held apart."""
    one = small_job(small_torus((2, 2, 2)), 2, 1, 1, zero_stage=3)
    plain = small_job(small_torus((2, 2, 2)), 2, 1, 1)
    assert stage_memory(one, 0) == stage_memory(plain, 0)


def test_a_model_without_dropout_keeps_no_masks() -> None:
    """``model.dropout`` 0 (what the numpy trainer trains): no residual masks and only the
    softmax output of the attention core (2 a s^2 b / t instead of 5); unset is GPT-2's 0.1,
    Korthikanti's eq. 2."""
    job = job_of(GPT, 2)
    none = job_of(GPT.model_copy(update={"dropout": 0.0}), 2)
    m, t = GPT, 2
    s, b, h, a = m.seq_len, 2, m.hidden, m.heads
    assert GPT.dropout is None and activation_bytes_per_layer(job, "none") == pytest.approx(
        korthikanti_eq2(job))
    assert activation_bytes_per_layer(none, "none") == pytest.approx(
        korthikanti_eq2(job) - 2 * s * b * h - 3 * a * s * s * b / t)
    assert "residual dropout masks" not in kept_activations(none)
    explicit = job_of(GPT.model_copy(update={"dropout": 0.1}), 2)
    assert kept_activations(explicit) == kept_activations(job)


def test_parts_are_the_shared_memory_keys_and_sum_to_the_total() -> None:
    job = zero_job(1)
    m = stage_memory(replace(job, stack=with_values(job.stack, {"framework_memory_GiB": 3.0})), 0)
    assert tuple(m.parts()) == MEMORY_KEYS
    assert m.framework == 3 * GiB and m.total == pytest.approx(sum(m.parts().values()))


def test_prediction_reports_the_fullest_ranks_by_part() -> None:
    job = small_job(small_torus((2, 2, 2)), 2, 2, 2, recompute="selective",
                    sequence_parallel=True)
    d = predict(job).to_json()
    parts = d["memory_per_rank_GiB"]
    assert list(parts) == [*MEMORY_KEYS, "total"]
    stages = memory_by_stage(job)
    fullest = max(stages, key=lambda m: m.total)
    assert d["memory_peak_stage"] == fullest.stage
    assert parts["total"] * job.processes_per_node == pytest.approx(d["memory_per_node_GiB"])
