"""Parameter counts and arithmetic of a GPT, per model and per step.

Parameters are sums over the model's tensor table (:mod:`fugaku_sim.tensors`), the one the
trainer shards; what one rank of a stage holds is
:func:`fugaku_sim.tensors.stage_parameters`.

Sources:
- Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM", SC21, appendix: parameters P = 12 l h^2 (1 + 13/(12 h) + (V + s)/(12 l h));
  FLOPs per iteration with full recomputation F = 96 B s l h^2 (1 + s/(6 h) + V/(16 l h)),
  and 72 B s l h^2 (1 + s/(6 h) + V/(12 l h)) without it (one forward and two backward
  matmul passes instead of four).
The closed forms assume ffn = 4 h and serve as reference formulas; ``layer_forward_flops``
uses the model's real widths.
"""

from __future__ import annotations

from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.tensors import LM_HEAD, tensor_table


def parameter_count(model: ModelSpec) -> int:
    """All parameters of the model: the sum over its tensor table (a tied head counted once)."""
    return tensor_table(model).parameters()


def megatron_parameter_count(model: ModelSpec) -> float:
    """Narayanan et al. (SC21) closed form, for ffn = 4 h."""
    l, h, v, s = model.layers, model.hidden, model.vocab, model.seq_len
    return 12 * l * h**2 * (1 + 13 / (12 * h) + (v + s) / (12 * l * h))


def layer_forward_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of one transformer block for ``tokens`` tokens (2 per multiply-add):
    one multiply-add per token for every weight of the block's matrices (QKV, projection,
    MLP: the table's two-dimensional tensors; Kaplan et al. 2020, "Scaling Laws", 2.1), and
    attention scores and values (causal masking not exploited)."""
    weights = sum(r.size for r in tensor_table(model).block(0) if len(r.shape) == 2)
    return float(2 * tokens * weights + attention_core_flops(model, tokens))


def attention_core_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of one block's attention scores and attention over values for
    ``tokens`` tokens, 2 x 2 tokens s h (causal masking not exploited): what selective
    recomputation runs again (Korthikanti et al. 2022, appendix A)."""
    return float(2 * 2 * tokens * model.seq_len * model.hidden)


def head_forward_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of the LM head (logits over the vocabulary: one multiply-add per token
    for every weight of the [V, C] head)."""
    return float(2 * tokens * tensor_table(model)[LM_HEAD].size)


def model_flops_per_token(model: ModelSpec) -> float:
    """Training FLOPs per token without recomputation (forward + backward = 3 x forward).

    This is the "model FLOPs" used for MFU: recomputation is not useful work.
    """
    forward = model.layers * layer_forward_flops(model, 1) + head_forward_flops(model, 1)
    return 3.0 * forward


def megatron_flops_per_step(model: ModelSpec, global_batch: int, recompute: bool) -> float:
    """Narayanan et al. (SC21) closed form of the FLOPs of one iteration."""
    b, s, l, h, v = global_batch, model.seq_len, model.layers, model.hidden, model.vocab
    if recompute:
        return 96 * b * s * l * h**2 * (1 + s / (6 * h) + v / (16 * l * h))
    return 72 * b * s * l * h**2 * (1 + s / (6 * h) + v / (12 * l * h))
