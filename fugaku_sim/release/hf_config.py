"""Hugging Face ``config.json`` / ``generation_config.json`` for a GPT-2 release, and back.

Field names and meanings are ``transformers.GPT2Config``'s: ``n_positions`` the learned
position table (our ``seq_len``), ``n_embd`` channels, ``n_inner`` the MLP width,
``activation_function: gelu_new`` (tanh GELU), ``layer_norm_epsilon`` 1e-5, no dropout at
inference, tied input and output embeddings.
"""

from __future__ import annotations

from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.evaluate.gpt import LAYER_NORM_EPS
from fugaku_sim.spec import ModelSpec

REQUIRED_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")


def gpt2_config(spec: ModelSpec, bos_id: int, eos_id: int) -> dict[str, Any]:
    """The ``config.json`` object for ``spec`` (a ``GPT2LMHeadModel``)."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": spec.vocab, "n_positions": spec.seq_len, "n_embd": spec.hidden,
        "n_layer": spec.layers, "n_head": spec.heads, "n_inner": spec.ffn,
        "activation_function": "gelu_new", "layer_norm_epsilon": LAYER_NORM_EPS,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "use_cache": True,
        "tie_word_embeddings": spec.tied_embeddings,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": "float32"}


def generation_config(bos_id: int, eos_id: int, max_new_tokens: int = 64,
                      temperature: float = 0.8, top_k: int = 40) -> dict[str, Any]:
    """``generation_config.json``: sampling defaults, EOD as end and (absent a pad) pad id."""
    return {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id,
            "do_sample": True, "temperature": temperature, "top_k": top_k,
            "max_new_tokens": max_new_tokens}


def spec_from_config(config: dict[str, Any], name: str, source: str) -> ModelSpec:
    """The :class:`ModelSpec` a GPT-2 ``config.json`` describes.

    Raises:
        UserError: not a GPT-2 config, a missing or non-integer size field, or a config
            this package cannot run (another activation, untied embeddings with a different
            epsilon ...).
    """
    from pydantic import ValidationError

    if config.get("model_type") != "gpt2":
        raise UserError(f"{source}: model_type is {config.get('model_type')!r}, expected 'gpt2'")
    for key in REQUIRED_FIELDS:
        if not isinstance(config.get(key), int):
            raise UserError(f"{source}: field {key} must be an integer")
    if config.get("activation_function", "gelu_new") != "gelu_new":
        raise UserError(f"{source}: activation_function {config['activation_function']!r} "
                        "is not supported (gelu_new only)")
    eps = config.get("layer_norm_epsilon", LAYER_NORM_EPS)
    if not isinstance(eps, (int, float)) or abs(float(eps) - LAYER_NORM_EPS) > 1e-12:
        raise UserError(f"{source}: layer_norm_epsilon {eps!r} is not supported (1e-05 only)")
    try:
        return ModelSpec(name=name, layers=config["n_layer"], hidden=config["n_embd"],
                         heads=config["n_head"], ffn_hidden=config.get("n_inner"),
                         seq_len=config["n_positions"], vocab=config["vocab_size"],
                         tied_embeddings=bool(config.get("tie_word_embeddings", True)))
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{source}: not a valid model ({first})") from None
