"""Hugging Face ``config.json`` / ``generation_config.json`` for a release, and back.

A GPT-2-family model is a ``GPT2LMHeadModel``; field names and meanings are
``transformers.GPT2Config``'s: ``n_positions`` the learned position table (our ``seq_len``),
``n_embd`` channels, ``n_inner`` the MLP width, ``activation_function: gelu_new`` (tanh
GELU), ``layer_norm_epsilon``, no dropout at inference.

A Llama-family model is a ``LlamaForCausalLM`` (``transformers.LlamaConfig``):
``intermediate_size`` the gated MLP's width, ``hidden_act: silu``, ``num_key_value_heads``
(grouped-query attention), ``rms_norm_eps``, ``rope_theta`` (written twice: at the top
level, where transformers before 5 reads it, and in ``rope_parameters``, where 5 does),
``max_position_embeddings`` (our ``seq_len``), ``attention_bias`` and ``mlp_bias`` (both
our ``bias``), ``tie_word_embeddings``.
"""

from __future__ import annotations

import math
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec

#: the transformers class of each family's releases
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
GPT2_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
LLAMA_FIELDS = ("vocab_size", "max_position_embeddings", "hidden_size", "intermediate_size",
                "num_hidden_layers", "num_attention_heads")


def gpt2_config(spec: ModelSpec, bos_id: int, eos_id: int) -> dict[str, Any]:
    """The ``config.json`` object for ``spec`` (a ``GPT2LMHeadModel``)."""
    return {
        "architectures": [ARCHITECTURES["gpt2"]], "model_type": "gpt2",
        "vocab_size": spec.vocab, "n_positions": spec.seq_len, "n_embd": spec.hidden,
        "n_layer": spec.layers, "n_head": spec.heads, "n_inner": spec.ffn,
        "activation_function": "gelu_new", "layer_norm_epsilon": spec.norm_eps,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "initializer_range": 0.02,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "use_cache": True,
        "tie_word_embeddings": spec.tied_embeddings,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": "float32"}


def llama_config(spec: ModelSpec, bos_id: int, eos_id: int) -> dict[str, Any]:
    """The ``config.json`` object for ``spec`` (a ``LlamaForCausalLM``)."""
    return {
        "architectures": [ARCHITECTURES["llama"]], "model_type": "llama",
        "vocab_size": spec.vocab, "max_position_embeddings": spec.seq_len,
        "hidden_size": spec.hidden, "intermediate_size": spec.ffn,
        "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv, "head_dim": spec.head_dim, "hidden_act": "silu",
        "rms_norm_eps": spec.norm_eps, "rope_theta": spec.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": spec.rope_theta},
        "attention_bias": spec.bias, "mlp_bias": spec.bias, "attention_dropout": 0.0,
        "pretraining_tp": 1, "initializer_range": 0.02, "use_cache": True,
        "tie_word_embeddings": spec.tied_embeddings,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": "float32"}


def model_config(spec: ModelSpec, bos_id: int, eos_id: int) -> dict[str, Any]:
    """The ``config.json`` object of ``spec``'s family."""
    return (llama_config if spec.family == "llama" else gpt2_config)(spec, bos_id, eos_id)


def generation_config(bos_id: int, eos_id: int, max_new_tokens: int = 64,
                      temperature: float = 0.8, top_k: int = 40) -> dict[str, Any]:
    """``generation_config.json``: sampling defaults, EOD as end and (absent a pad) pad id."""
    return {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id,
            "do_sample": True, "temperature": temperature, "top_k": top_k,
            "max_new_tokens": max_new_tokens}


def _require_ints(config: dict[str, Any], keys: tuple[str, ...], source: str) -> None:
    for key in keys:
        if not isinstance(config.get(key), int) or isinstance(config.get(key), bool):
            raise UserError(f"{source}: field {key} must be an integer")


def _positive(config: dict[str, Any], key: str, default: float, source: str) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"{source}: field {key} must be a positive number, got {value!r}")
    return float(value)


def _gpt2_fields(config: dict[str, Any], source: str) -> dict[str, Any]:
    _require_ints(config, GPT2_FIELDS, source)
    if config.get("activation_function", "gelu_new") != "gelu_new":
        raise UserError(f"{source}: activation_function {config['activation_function']!r} "
                        "is not supported (gelu_new only)")
    return dict(layers=config["n_layer"], hidden=config["n_embd"], heads=config["n_head"],
                ffn_hidden=config.get("n_inner"), seq_len=config["n_positions"],
                vocab=config["vocab_size"],
                norm_eps=_positive(config, "layer_norm_epsilon", 1e-5, source),
                tied_embeddings=bool(config.get("tie_word_embeddings", True)))


def _rope_theta(config: dict[str, Any], source: str) -> float:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise UserError(f"{source}: rope_parameters must be an object")
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise UserError(f"{source}: rope_type {kind!r} is not supported (default only)")
    if "rope_theta" in rope:
        return _positive(rope, "rope_theta", 10000.0, source)
    return _positive(config, "rope_theta", 10000.0, source)


def _llama_fields(config: dict[str, Any], source: str) -> dict[str, Any]:
    _require_ints(config, LLAMA_FIELDS, source)
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    if config.get("hidden_act", "silu") != "silu":
        raise UserError(f"{source}: hidden_act {config['hidden_act']!r} is not supported "
                        "(silu only)")
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim * heads != config["hidden_size"]:
        raise UserError(f"{source}: head_dim {head_dim} x num_attention_heads {heads} is not "
                        f"hidden_size {config['hidden_size']} (not supported)")
    bias = config.get("attention_bias", False)
    if config.get("mlp_bias", False) != bias:
        raise UserError(f"{source}: attention_bias and mlp_bias differ (not supported)")
    return dict(layers=config["num_hidden_layers"], hidden=config["hidden_size"], heads=heads,
                kv_heads=kv, ffn_hidden=config["intermediate_size"],
                seq_len=config["max_position_embeddings"], vocab=config["vocab_size"],
                norm="rmsnorm", mlp="swiglu", positions="rotary",
                norm_eps=_positive(config, "rms_norm_eps", 1e-6, source),
                rope_theta=_rope_theta(config, source), bias=bool(bias),
                tied_embeddings=bool(config.get("tie_word_embeddings", False)))


def spec_from_config(config: dict[str, Any], name: str, source: str) -> ModelSpec:
    """The :class:`ModelSpec` a GPT-2 or Llama ``config.json`` describes (defaults as
    transformers' config classes have them).

    Raises:
        UserError: another model type, a missing or non-integer size field, or a config
            this package cannot run (another activation, scaled rotary positions ...).
    """
    from pydantic import ValidationError

    kind = config.get("model_type")
    if kind not in ARCHITECTURES:
        raise UserError(f"{source}: model_type is {kind!r}, expected one of "
                        f"{', '.join(map(repr, ARCHITECTURES))}")
    fields = _llama_fields(config, source) if kind == "llama" else _gpt2_fields(config, source)
    try:
        return ModelSpec(name=name, **fields)
    except ValidationError as exc:  # named by the spec's field (layers for n_layer ...)
        from fugaku_sim.spec.load import validation_message

        raise UserError(f"{source}: not a valid model "
                        f"({validation_message(exc, '', 'model')})") from None


def check_generation_config(generation: dict[str, Any], config: dict[str, Any],
                            source: str) -> None:
    """``generation_config.json`` (``generation``) fits ``config.json`` (``config``): the
    token ids :func:`generation_config` writes are config.json's (the pad is the end of
    document), the sampling settings numbers transformers takes.

    Raises:
        UserError: the first field that does not (one line naming it).
    """
    bos: Any = config.get("bos_token_id")  # compared as given, whatever config.json holds
    eos: Any = config.get("eos_token_id")
    expected = generation_config(bos, eos)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if generation.get(key) != expected[key]:
            raise UserError(f"{source}: {key} is {generation.get(key)!r}, config.json's "
                            f"tokens give {expected[key]!r}; rebuild the release")
    checks = {"do_sample": lambda v: isinstance(v, bool),
              "temperature": lambda v: _number(v) and math.isfinite(v) and v > 0,
              "top_k": lambda v: _number(v) and isinstance(v, int) and v >= 0,
              "max_new_tokens": lambda v: _number(v) and isinstance(v, int) and v > 0}
    for key, ok in checks.items():
        if key in generation and not ok(generation[key]):
            raise UserError(f"{source}: {key} is {generation[key]!r}, not a value "
                            "transformers' GenerationConfig takes")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
