"""Memory per rank: Korthikanti et al.'s activation table, the ZeRO stages, the parts."""

from __future__ import annotations

from typing import Any

import pytest

from fugaku_sim.sim.memory import (
    GiB,
    activation_bytes_per_layer,
    memory_by_stage,
    parameter_bytes,
    stage_memory,
)
from fugaku_sim.sim.predict import predict
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.breakdown import MEMORY_KEYS
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import stage_parameters
from tests.sim.small import small_job, small_torus

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


def test_fp32_doubles_the_values_not_the_dropout_masks() -> None:
    """Of the 34 s b h + 5 a s^2 b bytes, 2 s b h + a s^2 b are 1-byte masks."""
    half, full = gpt3_job("fp16"), gpt3_job("fp32")
    sbh, core = 2048 * 12288, 96 * 2048**2
    for mode, masks in (("none", 2 * sbh + core / 8), ("selective", 2 * sbh)):
        b16 = activation_bytes_per_layer(half, mode)  # type: ignore[arg-type]
        assert activation_bytes_per_layer(full, mode) == pytest.approx(2 * b16 - masks)  # type: ignore[arg-type]


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


def test_parts_are_the_shared_memory_keys_and_sum_to_the_total() -> None:
    m = stage_memory(zero_job(1), 0, framework_bytes=3 * GiB)
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
