"""Inference in numpy for both model families: a full forward pass and incremental
(KV-cached) decoding.

Shape key (nanoGPT/llm.c): B batch, T new positions, L positions already in the cache,
C channels (``hidden``), H heads, K key/value heads (K = H without grouped-query
attention), D head size (``head_dim``), F MLP width, V vocabulary.

The math is what Hugging Face ``transformers`` computes for the family:

- GPT-2 (``modeling_gpt2.py``): pre-layer-norm blocks, learned absolute positions, causal
  self-attention scaled by 1/sqrt(D), GELU with the tanh approximation (``gelu_new``), a
  final layer norm; Conv1D weights (``[in, out]``), so ``y = x @ W + b``.
- Llama (``modeling_llama.py``): pre-RMSNorm blocks, rotary positions on queries and keys
  (position ``L + i`` for the i-th new token: the cache holds keys already rotated), K
  key/value heads each shared by H/K query heads, SwiGLU MLP; ``nn.Linear`` weights
  (``[out, in]``), so ``y = x @ W.T + b``; biases only where the spec has them.

The LM head is tied to the token embedding unless the spec says otherwise. Norms, GELU,
SwiGLU and the rotary embedding come from the trainer's layers (one implementation of the
math); attention is written here because decoding with a cache needs queries and keys of
different lengths. The tests check this forward against the trainer's ``forward_logits``
and transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.train.layers import LN_EPS, gelu_forward, layernorm_forward
from fugaku_sim.train.llama_layers import rotary_forward, swiglu_forward
from fugaku_sim.train.model import head_name, norm_forward
from fugaku_sim.train.params import Names, Params, block_names, optional

# layer norm and GELU are the trainer's (one implementation of the math); their backward
# caches are dropped here
LAYER_NORM_EPS = LN_EPS


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
               eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """Layer norm over the last axis (biased variance). ``x`` [..., C]."""
    return layernorm_forward(x, weight, bias, eps)[0]


def gelu_new(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (Hendrycks & Gimpel 2016; GPT-2's and HF's ``gelu_new``)."""
    return gelu_forward(x)[0]


@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far.

    ``keys[l]`` and ``values[l]`` are [B, K, seq_len, D], filled up to ``length``.
    """

    keys: list[np.ndarray]
    values: list[np.ndarray]
    length: int = 0
    batch: int = field(default=1)

    @classmethod
    def empty(cls, spec: ModelSpec, batch: int) -> KVCache:
        """A cache for ``batch`` sequences of at most ``spec.seq_len`` positions."""
        shape = (batch, spec.kv, spec.seq_len, spec.head_dim)
        return cls(keys=[np.zeros(shape, np.float32) for _ in range(spec.layers)],
                   values=[np.zeros(shape, np.float32) for _ in range(spec.layers)],
                   batch=batch)


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    b, t, c = x.shape
    return x.reshape(b, t, heads, c // heads).transpose(0, 2, 1, 3)  # [B,H,T,D]


def _linear(x: np.ndarray, params: Params, n: Names, role: str, out_in: bool) -> np.ndarray:
    """x @ W (+ b) of the tensor of ``role``; ``out_in``: ``nn.Linear``'s [out, in] layout."""
    w = params[n[role]]
    y = x @ (w.T if out_in else w)
    bias = optional(params, n, f"{role}_bias")
    return y if bias is None else y + bias


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, spec: ModelSpec,
           cache: KVCache | None, layer: int) -> np.ndarray:
    """Causal attention of the new positions: q [B,T,H D], k and v [B,T,K D] -> [B,T,H D].

    With a cache, the new keys and values are stored at positions ``cache.length ...`` and
    each new query attends to every cached position and to the new ones up to itself.
    """
    b, t, c = q.shape
    q = _split_heads(q, spec.heads)
    k, v = _split_heads(k, spec.kv), _split_heads(v, spec.kv)  # [B,K,T,D]
    past = 0
    if cache is not None:
        past = cache.length
        cache.keys[layer][:, :, past:past + t] = k
        cache.values[layer][:, :, past:past + t] = v
        k = cache.keys[layer][:, :, :past + t]  # [B,K,L+T,D]
        v = cache.values[layer][:, :, :past + t]
    if spec.kv != spec.heads:  # query head h reads key/value head h // (H / K)
        k, v = (np.repeat(a, spec.heads // spec.kv, axis=1) for a in (k, v))
    scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(spec.head_dim))  # [B,H,T,L+T]
    # query i sits at absolute position past + i and may see keys 0 .. past + i
    future = np.arange(past + t)[None, :] > (past + np.arange(t))[:, None]  # [T,L+T]
    scores = np.where(future, np.float32(-np.inf), scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, c)  # [B,T,C]


def _attention(h: np.ndarray, params: Params, n: Names, spec: ModelSpec,
               cache: KVCache | None, layer: int) -> np.ndarray:
    """The family's attention sublayer on normalised ``h`` [B,T,C] -> [B,T,C]."""
    llama = spec.family == "llama"
    if llama:
        past = cache.length if cache is not None else 0
        q = rotary_forward(_linear(h, params, n, "q", True), spec.heads, spec.rope_theta,
                           past)[0]
        k = rotary_forward(_linear(h, params, n, "k", True), spec.kv, spec.rope_theta,
                           past)[0]
        v = _linear(h, params, n, "v", True)
    else:
        d = spec.head_dim
        qkv = _linear(h, params, n, "qkv", False)  # [q | k | v], K heads in k and v
        q, k, v = np.split(qkv, [spec.heads * d, (spec.heads + spec.kv) * d], axis=-1)
    return _linear(attend(q, k, v, spec, cache, layer), params, n, "attn_out", llama)


def _mlp(h: np.ndarray, params: Params, n: Names, spec: ModelSpec) -> np.ndarray:
    """The family's MLP on normalised ``h`` [B,T,C] -> [B,T,C]."""
    if spec.family == "llama":
        gate, up = (_linear(h, params, n, r, True) for r in ("mlp_gate", "mlp_up"))
        return _linear(swiglu_forward(gate, up)[0], params, n, "mlp_out", True)  # [B,T,F]
    return _linear(gelu_new(_linear(h, params, n, "mlp_in", False)), params, n, "mlp_out",
                   False)


def _norm(x: np.ndarray, params: Params, n: Names, role: str, spec: ModelSpec) -> np.ndarray:
    return norm_forward(spec, x, params[n[role]], optional(params, n, f"{role}_bias"))[0]


def block(x: np.ndarray, params: Params, spec: ModelSpec, layer: int,
          cache: KVCache | None) -> np.ndarray:
    """One pre-norm transformer block: ``x + attn(norm_1(x))`` then ``x + mlp(norm_2(x))``."""
    n = block_names(spec, layer)
    x = x + _attention(_norm(x, params, n, "attn_norm", spec), params, n, spec, cache, layer)
    return x + _mlp(_norm(x, params, n, "mlp_norm", spec), params, n, spec)


def forward_logits(params: Params, spec: ModelSpec, tokens: np.ndarray,
                   cache: KVCache | None = None) -> np.ndarray:
    """Logits [B,T,V] (float32) of the next token after each of ``tokens`` [B,T].

    Without a cache the tokens are positions 0..T-1. With one they continue it (positions
    ``cache.length ...``) and the cache grows by T.

    Raises:
        ValueError: more positions than ``spec.seq_len``, or token ids outside the vocabulary.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [B,T], got shape {tokens.shape}")
    past = cache.length if cache is not None else 0
    t = tokens.shape[1]
    if past + t > spec.seq_len:
        raise ValueError(f"{past + t} positions exceed the model's seq_len {spec.seq_len}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= spec.vocab):
        raise ValueError(f"token ids must lie in [0, {spec.vocab})")
    n = block_names(spec, None)
    x = params[n["tok_embed"]][tokens]  # [B,T,C]
    if "pos_embed" in n:
        x = x + params[n["pos_embed"]][past:past + t]
    x = x.astype(np.float32, copy=False)
    for layer in range(spec.layers):
        x = block(x, params, spec, layer, cache)
    if cache is not None:
        cache.length += t
    x = _norm(x, params, n, "final_norm", spec)
    head = params[head_name(spec)]  # [V,C]: the token embedding when tied
    return np.asarray(x @ head.T, dtype=np.float32)


class GPT:
    """A loaded model of either family (spec + named weights) behind the
    :class:`LanguageModel` interface."""

    def __init__(self, spec: ModelSpec, params: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.params = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}

    @property
    def seq_len(self) -> int:
        return self.spec.seq_len

    @property
    def vocab(self) -> int:
        return self.spec.vocab

    def new_cache(self, batch: int) -> KVCache:
        """An empty KV cache for ``batch`` sequences."""
        return KVCache.empty(self.spec, batch)

    def logits(self, tokens: np.ndarray, cache: KVCache | None = None) -> np.ndarray:
        """Next-token logits [B,T,V] for ``tokens`` [B,T] (see :func:`forward_logits`)."""
        return forward_logits(self.params, self.spec, tokens, cache)
