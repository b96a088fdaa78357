"""Parameter counts and arithmetic of a model (GPT-2 or Llama family), per model and per step.

Parameters are sums over the model's tensor table (:mod:`fugaku_sim.tensors`), the one the
trainer shards; what one rank of a stage holds is
:func:`fugaku_sim.tensors.stage_parameters`. FLOPs too come from the table: one multiply-add
per token for every weight of a matrix (the q/k/v or fused QKV projection with however many
key/value heads, the output projection, the two or three MLP matrices, the head), plus the
attention scores and values over every query head; so model FLOPs per token are
6 x (parameters in matrices) + 3 x attention, for any family.

Sources:
- Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM", SC21, appendix: parameters P = 12 l h^2 (1 + 13/(12 h) + (V + s)/(12 l h));
  FLOPs per iteration with full recomputation F = 96 B s l h^2 (1 + s/(6 h) + V/(16 l h)),
  and 72 B s l h^2 (1 + s/(6 h) + V/(12 l h)) without it (one forward and two backward
  matmul passes instead of four).
- Hoffmann et al., "Training Compute-Optimal Large Language Models" (Chinchilla), 2022,
  appendix F: forward FLOPs per sequence counted op by op (embeddings, projections, logits,
  softmax, score reductions, MLP, output logits), backward twice the forward.
The closed forms assume ffn = 4 h (Narayanan) or a two-matrix MLP (Hoffmann) and serve as
reference formulas (:func:`chinchilla_flops_per_token` counts key/value heads and a gated MLP
as the table does); ``layer_forward_flops`` uses the model's real widths.
"""

from __future__ import annotations

from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.tensors import LM_HEAD, tensor_table


def parameter_count(model: ModelSpec) -> int:
    """All parameters of the model: the sum over its tensor table (a tied head counted once)."""
    return tensor_table(model).parameters()


def megatron_formulas_apply(model: ModelSpec) -> bool:
    """Whether Narayanan et al.'s closed forms describe ``model``'s layer at all: a GPT-2
    layer with multi-head attention (not a gated MLP, nor grouped key/value heads)."""
    return model.family == "gpt2" and model.kv == model.heads


def megatron_parameter_count(model: ModelSpec) -> float:
    """Narayanan et al. (SC21) closed form, for ffn = 4 h."""
    l, h, v, s = model.layers, model.hidden, model.vocab, model.seq_len
    return 12 * l * h**2 * (1 + 13 / (12 * h) + (v + s) / (12 * l * h))


def layer_forward_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of one transformer block for ``tokens`` tokens (2 per multiply-add):
    one multiply-add per token for every weight of the block's matrices (query/key/value,
    output projection, MLP: the table's two-dimensional tensors; Kaplan et al. 2020, "Scaling
    Laws", 2.1), and attention scores and values over all query heads (A D = C wide; causal
    masking not exploited, as Megatron-LM counts them)."""
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


def chinchilla_flops_per_token(model: ModelSpec) -> float:
    """Hoffmann et al. (2022, appendix F) training FLOPs per token: 3 x the forward count of
    embeddings (2 V C), per layer the query/key/value projections (2 C D (A + 2 kv): the
    paper's 2 x 3 C D A with kv key/value heads), key-query logits (2 T D A), softmax (3 A T),
    the reduction over values (2 T D A), the output projection (2 D A C), the MLP (2 x 2 C F,
    or 3 x 2 C F gated), and the output logits (2 C V). A reference for
    :func:`model_flops_per_token`, which leaves out the embedding lookup and the softmax."""
    c, v, t, f = model.hidden, model.vocab, model.seq_len, model.ffn
    a, d, kv = model.heads, model.head_dim, model.kv
    attention = 2 * c * d * (a + 2 * kv) + 2 * t * d * a + 3 * a * t + 2 * t * d * a + 2 * d * a * c
    mlp = (3 if model.mlp == "swiglu" else 2) * 2 * c * f
    forward = 2 * v * c + model.layers * (attention + mlp) + 2 * c * v
    return 3.0 * forward
