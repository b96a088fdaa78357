"""The whole model: finite differences, tensor-parallel shards, initialisation, and Hugging
Face GPT-2 (torch) as the golden reference when it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LM_HEAD, WTE, tensor_table
from fugaku_sim.train import model as M
from fugaku_sim.train.copies import copied_elements, copies_per_head
from fugaku_sim.train.params import rank_share

from .helpers import ThreadCollective, run_ranks, thread_region
from .test_layers import assert_close, numeric_grad

TINY = ModelSpec(name="t", layers=2, hidden=8, heads=2, seq_len=6, vocab=12)


def tiny_batch(spec: ModelSpec, b: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, spec.vocab, size=(b, spec.seq_len + 1))
    return seq[:, :-1], seq[:, 1:]


def params64(spec: ModelSpec, seed: int = 3) -> M.Params:
    params = {k: v.astype(np.float64) for k, v in M.init_params(spec, seed).items()}
    rng = np.random.default_rng(seed)
    for k in params:  # perturb biases and norms too, so that every gradient is exercised
        params[k] += 0.1 * rng.standard_normal(params[k].shape)
    return params


def test_whole_model_finite_differences() -> None:
    params = params64(TINY)
    tokens, targets = tiny_batch(TINY)
    _, grads = M.loss_and_grads(params, TINY, tokens, targets)

    def f() -> float:
        return M.loss_and_grads(params, TINY, tokens, targets)[0]

    for name in params:
        assert_close(grads[name], numeric_grad(f, params[name], eps=1e-5), rtol=1e-6)


def test_forward_logits_agrees_with_loss() -> None:
    params = params64(TINY)
    tokens, targets = tiny_batch(TINY)
    logits = M.forward_logits(params, TINY, tokens)
    assert logits.shape == (2, TINY.seq_len, TINY.vocab)
    z = logits.reshape(-1, TINY.vocab)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    ref = float(np.mean(lse - z[np.arange(z.shape[0]), targets.reshape(-1)]))
    assert M.loss_and_grads(params, TINY, tokens, targets)[0] == pytest.approx(ref, rel=1e-12)


def test_forward_logits_rejects_bad_tokens() -> None:
    params = M.init_params(TINY, 0)
    with pytest.raises(ValueError, match="token ids"):
        M.forward_logits(params, TINY, np.array([[TINY.vocab]]))
    with pytest.raises(ValueError, match="seq_len|T <="):
        M.forward_logits(params, TINY, np.zeros((1, TINY.seq_len + 1), dtype=np.int64))


def test_initialisation_follows_gpt2() -> None:
    spec = ModelSpec(name="t", layers=4, hidden=64, heads=4, seq_len=32, vocab=256)
    params = M.init_params(spec, 7)
    assert set(params) == set(tensor_table(spec).checkpoint_shapes())
    assert all(p.dtype == np.float32 for p in params.values())
    assert params[WTE].std() == pytest.approx(0.02, rel=0.05)
    proj = params["transformer.h.0.mlp.c_proj.weight"]
    assert proj.std() == pytest.approx(0.02 / math.sqrt(2 * spec.layers), rel=0.05)
    assert (params["transformer.h.1.ln_2.weight"] == 1).all()
    assert (params["transformer.h.1.attn.c_attn.bias"] == 0).all()
    again = M.init_params(spec, 7)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    np.testing.assert_array_equal(M.init_param(LM_HEAD, spec, 7), params[WTE])


def tensor_parallel_run(spec: ModelSpec, params: M.Params, tokens: np.ndarray,
                        targets: np.ndarray, tp: int, sequence_parallel: bool = False
                        ) -> list[tuple[float, M.Params]]:
    """Loss and local gradients of every tensor rank (threads sharing their collectives;
    ``sequence_parallel``: the regions gather and reduce-scatter along T)."""
    coll = ThreadCollective(tp)

    def rank(i: int, allreduce: M.L.AllReduce) -> tuple[float, M.Params]:
        return rank_loss_and_grads(spec, params, tokens, targets, tp, i,
                                   thread_region(coll, i, sequence_parallel))

    return run_ranks(tp, rank, coll)


def rank_loss_and_grads(spec: ModelSpec, params: M.Params, tokens: np.ndarray,
                        targets: np.ndarray, tp: int, i: int, region: M.L.Region
                        ) -> tuple[float, M.Params]:
    """Loss and local gradients of tensor rank ``i`` of ``tp`` over ``region`` (whose
    collectives join the other ranks)."""
    table = tensor_table(spec)
    p = {k: table.shard(k, v, tp, i) for k, v in params.items()}
    g = {k: np.zeros_like(v) for k, v in p.items()}
    share = rank_share(spec, tp, i)
    x, c_emb = M.embed_forward(p, spec, tokens, share.vocab_start, region)
    caches = []
    for layer in range(spec.layers):
        x, c = M.block_forward(p, spec, layer, x, share, region)
        caches.append(c)
    loss, c_head = M.head_forward(p, spec, x, targets, share.vocab_start, region)
    dx = M.head_backward(1.0, c_head, g, p, region)
    for layer in reversed(range(spec.layers)):
        dx = M.block_backward(dx, caches[layer], g, region)
    M.embed_backward(dx, c_emb, g, spec, region)
    return loss, g


def assert_tensor_parallel_grads(spec: ModelSpec, results: list[tuple[float, M.Params]],
                                 grads: M.Params, tp: int, sequence_parallel: bool = False
                                 ) -> None:
    """Every rank's gradient is its shard of the single-rank one; a key/value head held in
    copies gets its gradient as the sum over its copies, and under sequence parallelism a
    replicated tensor as the sum over the tensor ranks (what the trainer's sums do)."""
    table = tensor_table(spec)
    copies = copies_per_head(spec, tp)
    for name, full in grads.items():
        summed = sum(results[j][1][name] for j in range(tp))
        for i in range(tp):
            got = results[i][1][name]
            copied = copied_elements(spec, name, tp, i)
            if copied is not None:
                group = range(i // copies * copies, (i // copies + 1) * copies)
                got = np.where(copied, sum(results[j][1][name] for j in group), got)
            if sequence_parallel and table[name].split.kind == "rep":
                got = summed
            np.testing.assert_allclose(got, table.shard(name, full, tp, i), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{name} rank {i}")


GPT2_TP = ModelSpec(name="t", layers=2, hidden=8, heads=2, seq_len=6, vocab=12, ffn_hidden=16)


@pytest.mark.parametrize(("spec", "tp"), [
    (GPT2_TP, 2),
    (GPT2_TP.model_copy(update={"heads": 4, "kv_heads": 2}), 2),  # GQA in the fused QKV
    (GPT2_TP.model_copy(update={"heads": 4, "kv_heads": 1, "vocab": 16}), 4),  # copied kv
], ids=["mha", "gqa", "gqa-copied"])
def test_tensor_parallel_model_equals_single_rank(spec: ModelSpec, tp: int) -> None:
    """tp ranks (threads sharing an all-reduce) give the loss and the gradients of tp = 1."""
    check_tensor_parallel(ModelSpec.model_validate(spec.model_dump()), tp)


@pytest.mark.parametrize(("spec", "tp"), [
    (GPT2_TP, 2),
    (GPT2_TP.model_copy(update={"heads": 4, "kv_heads": 1, "vocab": 16, "seq_len": 8}), 4),
    (GPT2_TP.model_copy(update={"tied_embeddings": False, "hidden": 12, "heads": 3,
                                "ffn_hidden": 24}), 3),
], ids=["mha", "gqa-copied", "untied-tp3"])
def test_sequence_parallel_model_equals_single_rank(spec: ModelSpec, tp: int) -> None:
    """Sequence parallelism (Korthikanti et al. 2022, section 4.2.2): the regions all-gather
    and reduce-scatter along T, norms and residuals see T / tp tokens, the embedding adds
    each rank's own positions. Each rank's loss is the single-rank one, its split tensors'
    gradients are their shards, and the replicated tensors' gradients summed over the ranks
    are the single-rank ones (float64, to 1e-9)."""
    check_tensor_parallel(ModelSpec.model_validate(spec.model_dump()), tp,
                          sequence_parallel=True)


def check_tensor_parallel(spec: ModelSpec, tp: int, sequence_parallel: bool = False) -> None:
    """Every rank's loss is the single-rank one and its gradients are the shards of the
    single-rank ones (:func:`assert_tensor_parallel_grads`)."""
    params = params64(spec)
    tokens, targets = tiny_batch(spec)
    loss, grads = M.loss_and_grads(params, spec, tokens, targets)
    results = tensor_parallel_run(spec, params, tokens, targets, tp, sequence_parallel)
    for rank_loss, _ in results:
        assert rank_loss == pytest.approx(loss, rel=1e-12)
    assert_tensor_parallel_grads(spec, results, grads, tp, sequence_parallel)


# --------------------------------------------------------------------------- golden reference


def hf_model(spec: ModelSpec, params: M.Params, dtype: str):  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=spec.vocab, n_positions=spec.seq_len, n_embd=spec.hidden,
        n_layer=spec.layers, n_head=spec.heads, n_inner=spec.ffn,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, tie_word_embeddings=True,
    )
    model = transformers.GPT2LMHeadModel(config).to(getattr(torch, dtype)).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert {m for m in missing if not m.endswith(".attn.bias")} <= {"lm_head.weight"}
    return torch, model


@pytest.mark.interop
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_hugging_face_gpt2(dtype: str) -> None:
    """Logits, loss and every gradient against transformers' GPT2LMHeadModel."""
    spec = ModelSpec(name="t", layers=2, hidden=16, heads=4, seq_len=8, vocab=32)
    params = {k: v.astype(dtype) for k, v in params64(spec).items()}
    tokens, targets = tiny_batch(spec, b=3)
    torch, model = hf_model(spec, params, dtype)
    assert_matches_torch(spec, params, tokens, targets, torch, model,
                         {"float64": 1e-10, "float32": 1e-4}[dtype])


def assert_matches_torch(spec: ModelSpec, params: M.Params, tokens: np.ndarray,
                         targets: np.ndarray, torch, model, tol: float) -> None:  # type: ignore[no-untyped-def]
    """Our logits, loss and every gradient equal those of the torch ``model`` holding
    ``params`` (gradients relative to each tensor's largest), within ``tol``."""
    out = model(torch.from_numpy(tokens))
    np.testing.assert_allclose(M.forward_logits(params, spec, tokens),
                               out.logits.detach().numpy(), rtol=tol, atol=tol)
    loss, grads = M.loss_and_grads(params, spec, tokens, targets)
    ref = torch.nn.functional.cross_entropy(out.logits.reshape(-1, spec.vocab),
                                            torch.from_numpy(targets.reshape(-1)))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=tol)
    named = dict(model.named_parameters())
    for name, g in grads.items():
        torch_grad = named[name].grad.numpy()
        scale = max(np.abs(torch_grad).max(), 1e-6)
        np.testing.assert_allclose(g / scale, torch_grad / scale, atol=tol, err_msg=name)
