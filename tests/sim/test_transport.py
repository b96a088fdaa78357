"""Message sizes of the gradient sync for Llama-family layouts: the untied head's gradient
stays on the last stage; copied key/value heads have their gradients summed over tp."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.predict import predict
from fugaku_sim.sim.transport import embedding_grad_bytes, grad_bytes, kv_copy_grad_bytes
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import LM_HEAD, tensor_table


def job_of(model: ModelSpec, tp: int, pp: int = 1) -> Job:
    train = TrainSpec(global_batch=8, micro_batch=1, precision="bf16")
    return make_job(load_cluster("dgx-a100"), model, train, Layout(tp=tp, pp=pp, dp=8 // (tp * pp)))


def llama(kv_heads: int, tied: bool = False) -> ModelSpec:
    return ModelSpec(name="l", layers=4, hidden=512, heads=8, kv_heads=kv_heads, ffn_hidden=1024,
                     seq_len=256, vocab=1024, norm="rmsnorm", mlp="swiglu", positions="rotary",
                     bias=False, tied_embeddings=tied)


def test_untied_head_has_no_embedding_sync() -> None:
    """Untied, the last stage's gradient includes its own [V/t, C] head and nothing is
    all-reduced between the first and last stage; tied, the copy is."""
    untied, tied = job_of(llama(8), tp=2, pp=2), job_of(llama(8, tied=True), tp=2, pp=2)
    assert embedding_grad_bytes(untied) == 0
    assert embedding_grad_bytes(tied) == 1024 * 512 / 2 * 2
    head = tensor_table(untied.model)[LM_HEAD].local_size(2) * 2
    assert grad_bytes(untied, 1) == grad_bytes(tied, 1)  # the head, own or copy, is held
    assert head == 1024 * 512 / 2 * 2


@pytest.mark.parametrize("kv_heads, tp, copies", [(8, 4, False), (4, 4, False), (2, 4, True),
                                                   (1, 8, True)])
def test_copied_kv_heads_sum_their_gradients(kv_heads: int, tp: int, copies: bool) -> None:
    """Fewer key/value heads than tensor ranks: each rank's k and v ([D, C], one head) of every
    layer it holds are all-reduced over the tensor group once a step."""
    job = job_of(llama(kv_heads), tp)
    want = 4 * 2 * 64 * 512 * 2 if copies else 0.0  # layers x (k, v) x D x C x bf16
    assert kv_copy_grad_bytes(job, 0) == want
    events = {e.name for e in predict(job, trace=True).result.trace}
    assert ("kv grad sum" in events) == copies


def test_copied_kv_heads_in_gpt2s_fused_projection() -> None:
    """GPT-2 with one key/value head at tp 2: each rank's fused [C, (2 + 1 + 1) D] weight and
    bias hold one copied key and one copied value head: half of their elements."""
    model = ModelSpec(name="g", layers=2, hidden=256, heads=4, kv_heads=1, seq_len=128, vocab=512)
    job = job_of(model, 2)
    d = 64
    assert kv_copy_grad_bytes(job, 0) == 2 * (256 + 1) * 2 * d * 2
