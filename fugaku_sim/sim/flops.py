"""Parameter counts and arithmetic of a GPT, per model, per stage and per step.

Sources:
- Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  Megatron-LM", SC21, appendix: parameters P = 12 l h^2 (1 + 13/(12 h) + (V + s)/(12 l h));
  FLOPs per iteration with full recomputation F = 96 B s l h^2 (1 + s/(6 h) + V/(16 l h)),
  and 72 B s l h^2 (1 + s/(6 h) + V/(12 l h)) without it (one forward and two backward
  matmul passes instead of four).
The per-layer counts below assume ffn = 4 h for the closed forms; ``layer_params`` and
``layer_forward_flops`` use the model's real ffn width.
"""

from __future__ import annotations

from fugaku_sim.spec.model import ModelSpec


def layer_params(model: ModelSpec) -> int:
    """Parameters of one transformer block: QKV, projection, MLP (with biases), two norms."""
    h, f = model.hidden, model.ffn
    attention = h * 3 * h + 3 * h + h * h + h
    mlp = h * f + f + f * h + h
    norms = 2 * 2 * h
    return attention + mlp + norms


def embedding_params(model: ModelSpec) -> int:
    """Token and position embeddings, final norm, and an untied LM head if any."""
    tokens = model.vocab * model.hidden
    head = 0 if model.tied_embeddings else model.vocab * model.hidden
    return tokens + model.seq_len * model.hidden + 2 * model.hidden + head


def parameter_count(model: ModelSpec) -> int:
    """All parameters of the model (tied embeddings counted once)."""
    return model.layers * layer_params(model) + embedding_params(model)


def megatron_parameter_count(model: ModelSpec) -> float:
    """Narayanan et al. (SC21) closed form, for ffn = 4 h."""
    l, h, v, s = model.layers, model.hidden, model.vocab, model.seq_len
    return 12 * l * h**2 * (1 + 13 / (12 * h) + (v + s) / (12 * l * h))


def stage_parameters(model: ModelSpec, pp: int, stage: int, tp: int = 1) -> int:
    """Parameters held by one rank of ``stage``: its layers split over ``tp``, plus the
    embeddings on the first stage and the LM head (a second copy of the tied embedding, as
    Megatron keeps it) on the last."""
    per_layer = layer_params(model) // tp
    params = per_layer * (model.layers // pp)
    vocab_part = model.vocab * model.hidden // tp
    if stage == 0:
        params += vocab_part + model.seq_len * model.hidden
    if stage == pp - 1:
        params += 2 * model.hidden
        if not model.tied_embeddings or pp > 1:
            params += vocab_part
    return params


def layer_forward_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of one transformer block for ``tokens`` tokens (2 per multiply-add):
    QKV, attention scores and values (causal masking not exploited), projection, MLP."""
    h, f, s = model.hidden, model.ffn, model.seq_len
    dense = 2 * tokens * (3 * h * h + h * h + 2 * h * f)
    attention = 2 * 2 * tokens * s * h
    return float(dense + attention)


def head_forward_flops(model: ModelSpec, tokens: int) -> float:
    """Forward FLOPs of the LM head (logits over the vocabulary)."""
    return float(2 * tokens * model.hidden * model.vocab)


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
