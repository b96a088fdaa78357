"""The Llama family end to end on one process: finite differences of the whole model,
tensor-parallel shards (key/value heads split and copied), initialisation, and Hugging Face
``LlamaForCausalLM`` (torch) as the golden reference when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LLAMA_EMBED, LM_HEAD, tensor_table
from fugaku_sim.train import model as M

from .test_layers import assert_close, numeric_grad
from .test_model import assert_matches_torch, check_tensor_parallel, params64, tiny_batch


def llama(**kw: object) -> ModelSpec:
    base: dict[str, object] = dict(
        name="l", layers=2, hidden=16, heads=4, kv_heads=2, ffn_hidden=24, seq_len=6, vocab=16,
        norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", positions="rotary", rope_theta=500.0,
        bias=False, tied_embeddings=False)
    base.update(kw)
    return ModelSpec.model_validate(base)


SMALL = dict(hidden=8, ffn_hidden=12, vocab=12, seq_len=5)  # few parameters to perturb


@pytest.mark.parametrize("spec", [
    llama(**SMALL),
    llama(**SMALL, bias=True, tied_embeddings=True, kv_heads=None),
    llama(**SMALL, kv_heads=1),
], ids=["gqa-untied", "mha-bias-tied", "mqa"])
def test_whole_llama_finite_differences(spec: ModelSpec) -> None:
    params = params64(spec)
    tokens, targets = tiny_batch(spec)
    _, grads = M.loss_and_grads(params, spec, tokens, targets)

    def f() -> float:
        return M.loss_and_grads(params, spec, tokens, targets)[0]

    assert set(grads) == set(tensor_table(spec).checkpoint_shapes())
    for name in params:
        assert_close(grads[name], numeric_grad(f, params[name], eps=1e-5), rtol=1e-6)


@pytest.mark.parametrize(("spec", "tp"), [
    (llama(), 2),  # two key/value heads split over two ranks
    (llama(), 4),  # two key/value heads, each copied on two ranks
    (llama(kv_heads=1, bias=True, tied_embeddings=True), 2),  # one head copied on both
    (llama(heads=8, kv_heads=8, hidden=16), 4),  # multi-head, split
], ids=["kv-split", "kv-copied", "mqa-bias-tied", "mha"])
def test_tensor_parallel_llama_equals_single_rank(spec: ModelSpec, tp: int) -> None:
    """tp ranks give the single-rank loss, and each rank's gradients are its shards of the
    single-rank ones once the copies of a key/value head are summed."""
    check_tensor_parallel(spec, tp)


@pytest.mark.parametrize(("spec", "tp"), [
    (llama(), 2),  # two key/value heads split over two ranks
    (llama(seq_len=8), 4),  # each key/value head copied on two ranks
    (llama(kv_heads=1, bias=True, tied_embeddings=True), 2),  # biases on the shards' sums
], ids=["kv-split", "kv-copied", "mqa-bias-tied"])
def test_sequence_parallel_llama_equals_single_rank(spec: ModelSpec, tp: int) -> None:
    """Sequence-parallel Llama blocks (RMSNorm on T / tp tokens, rotary positions inside the
    region): the single-rank loss and gradients, replicated ones summed over the ranks."""
    check_tensor_parallel(spec, tp, sequence_parallel=True)


def test_initialisation_follows_llama() -> None:
    spec = llama(layers=4, hidden=64, heads=4, kv_heads=2, ffn_hidden=128, vocab=256,
                 seq_len=32)
    params = M.init_params(spec, 7)
    assert set(params) == set(tensor_table(spec).checkpoint_shapes())
    for name in (LLAMA_EMBED, LM_HEAD, "model.layers.3.mlp.down_proj.weight",
                 "model.layers.0.self_attn.o_proj.weight", "model.layers.1.self_attn.k_proj.weight"):
        assert params[name].std() == pytest.approx(0.02, rel=0.1), name  # no residual scaling
    assert (params["model.layers.2.post_attention_layernorm.weight"] == 1).all()
    assert (params["model.norm.weight"] == 1).all()
    assert not np.allclose(params[LM_HEAD], params[LLAMA_EMBED])  # untied: its own draw


def test_forward_logits_agrees_with_loss() -> None:
    spec = llama()
    params = params64(spec)
    tokens, targets = tiny_batch(spec)
    z = M.forward_logits(params, spec, tokens).reshape(-1, spec.vocab)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    ref = float(np.mean(lse - z[np.arange(z.shape[0]), targets.reshape(-1)]))
    assert M.loss_and_grads(params, spec, tokens, targets)[0] == pytest.approx(ref, rel=1e-12)


# --------------------------------------------------------------------------- golden reference


def hf_llama(spec: ModelSpec, params: M.Params, dtype: str):  # type: ignore[no-untyped-def]
    """transformers' LlamaForCausalLM with ``params`` (SDPA attention: the eager one takes
    the softmax in float32 even in a float64 model)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fugaku_sim.release.hf_config import llama_config

    config = transformers.LlamaConfig.from_dict(llama_config(spec, 1, 2))
    model = transformers.LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
    model = model.to(getattr(torch, dtype)).eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert set(missing) <= ({LM_HEAD} if spec.tied_embeddings else set())
    return torch, model


@pytest.fixture
def float64_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers' Llama computing in float64 where it casts to float32 even in a float64
    model: LlamaRMSNorm as written minus its cast; the rotary angles stay float32 (ours
    are HF's), their cos and sin taken in float64 and rounded to float32 as ours are."""
    torch = pytest.importorskip("torch")
    modeling = pytest.importorskip("transformers.models.llama.modeling_llama")

    def norm(self, hidden_states):  # type: ignore[no-untyped-def]
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * (variance + self.variance_epsilon).rsqrt())

    def rotary(self, x, position_ids):  # type: ignore[no-untyped-def]
        freqs = position_ids[..., None].float() * self.inv_freq.to(dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1).double()
        return emb.cos().float().to(x.dtype), emb.sin().float().to(x.dtype)

    monkeypatch.setattr(modeling.LlamaRMSNorm, "forward", norm)
    monkeypatch.setattr(modeling.LlamaRotaryEmbedding, "forward", rotary)


def check_against_hf(spec: ModelSpec, dtype: str, tol: float) -> None:
    """Logits, loss and every gradient against transformers' LlamaForCausalLM."""
    params = {k: v.astype(dtype) for k, v in params64(spec).items()}
    tokens, targets = tiny_batch(spec, b=3)
    torch, model = hf_llama(spec, params, dtype)
    assert_matches_torch(spec, params, tokens, targets, torch, model, tol)


HF_SPECS = [llama(seq_len=8, vocab=32), llama(seq_len=8, vocab=32, kv_heads=1, bias=True,
                                              tied_embeddings=True)]


@pytest.mark.interop
@pytest.mark.parametrize("spec", HF_SPECS, ids=["gqa-untied", "mqa-bias-tied"])
def test_matches_hugging_face_llama_float64(spec: ModelSpec, float64_llama: None) -> None:
    check_against_hf(spec, "float64", 1e-10)


@pytest.mark.interop
@pytest.mark.parametrize("spec", HF_SPECS, ids=["gqa-untied", "mqa-bias-tied"])
def test_matches_hugging_face_llama_float32(spec: ModelSpec) -> None:
    """transformers as it is (its RMSNorm in float32 is ours in float32)."""
    check_against_hf(spec, "float32", 1e-4)
