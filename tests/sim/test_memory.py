"""Activation memory per layer: the tensor-by-tensor count gives Korthikanti et al.'s eq. 2 back
for a GPT layer, and prices Llama layers (grouped-query attention, SwiGLU, no dropout) and
flash attention from what the layer keeps for its backward."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.memory import activation_bytes_per_layer, kept_activations
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.job import Job


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
    assert activation_bytes_per_layer(job, recompute=False) == pytest.approx(
        korthikanti_eq2(job) * scale)


def test_llama_layer_by_hand() -> None:
    """Llama-3-8B's layer at tp 1, one 8,192-token sequence in bf16: norms' inputs and outputs
    8 s h, queries and the 8 key/value heads repeated for their 4 query heads each 3 x 2 s
    4096, projection input 2 s 4096, SwiGLU 3 x 2 s 14336, softmax output 2 A s^2; no dropout
    masks. The flash kernel keeps the key/value heads as they are: 2 s (4096 + 2 x 1024)."""
    s = 8192
    job = job_of(LLAMA_3_8B, 1, "bf16", micro_batch=1)
    want = s * (8 * 4096 + 6 * 4096 + 2 * 4096 + 6 * 14336) + 2 * 32 * s * s
    assert activation_bytes_per_layer(job, recompute=False) == want
    assert "residual dropout masks" not in kept_activations(job)
    flash = job_of(LLAMA_3_8B, 4, "bf16", attention="flash", micro_batch=1)  # 2 kv heads a rank
    assert kept_activations(flash)["queries, keys, values"] == 2 * s * (1024 + 2 * 256)
    assert activation_bytes_per_layer(job, recompute=True) == 2 * s * 4096


def test_flash_attention_keeps_no_scores() -> None:
    """Flash attention keeps the fp32 log-sum-exp per query instead of the T x T scores."""
    job = job_of(LLAMA_3_8B, 2, "bf16", attention="flash", micro_batch=1)
    kept = kept_activations(job)
    assert "attention probabilities" not in kept
    assert kept["attention log-sum-exp"] == 4 * 16 * 8192
    materialized = job_of(LLAMA_3_8B, 2, "bf16", micro_batch=1)
    gap = (activation_bytes_per_layer(materialized, False) - activation_bytes_per_layer(job, False))
    repeated_kv = 2 * 8192 * 2 * (2048 - 512)  # materialized keeps 16 repeated k and v heads, not 4
    assert gap == pytest.approx(2 * 16 * 8192**2 - 4 * 16 * 8192 + repeated_kv)
    gpt_flash = job_of(GPT, 2, attention="flash")  # GPT-2 with flash: eq. 2 without 5 a s^2 b/t
    assert activation_bytes_per_layer(gpt_flash, False) == pytest.approx(
        korthikanti_eq2(gpt_flash) - 5 * 8 * 1024**2 * 2 + 4 * 8 * 1024 * 2)
