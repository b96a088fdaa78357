"""GPT-2 inference in numpy: a full forward pass and incremental (KV-cached) decoding.

Shape key (nanoGPT/llm.c): B batch, T new positions, L positions already in the cache,
C channels (``hidden``), H heads, D head size (``head_dim``), F MLP width, V vocabulary.

The math is GPT-2 as Hugging Face ``transformers`` computes it (``modeling_gpt2.py``):
pre-layer-norm blocks (eps 1e-5), learned absolute positions, causal self-attention scaled by
1/sqrt(D), GELU with the tanh approximation (``gelu_new``), a final layer norm, and the LM head
tied to the token embedding unless the spec says otherwise. Weights use the Hugging Face
GPT-2 names and Conv1D layouts (``[in, out]``), so ``y = x @ W + b``.

Layer norm and GELU come from the trainer's layers (``fugaku_sim.train.layers``); attention
is written here because decoding with a cache needs queries and keys of different lengths.
The tests check this forward against the trainer's ``forward_logits`` and transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LM_HEAD, LN_F, WPE, WTE, tensor_table
from fugaku_sim.train.layers import LN_EPS, gelu_forward, layernorm_forward

# layer norm and GELU are the trainer's (one implementation of the math); their backward
# caches are dropped here
LAYER_NORM_EPS = LN_EPS


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Layer norm over the last axis (eps 1e-5, biased variance). ``x`` [..., C]."""
    return layernorm_forward(x, weight, bias)[0]


def gelu_new(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (Hendrycks & Gimpel 2016; GPT-2's and HF's ``gelu_new``)."""
    return gelu_forward(x)[0]


@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far.

    ``keys[l]`` and ``values[l]`` are [B, H, seq_len, D], filled up to ``length``.
    """

    keys: list[np.ndarray]
    values: list[np.ndarray]
    length: int = 0
    batch: int = field(default=1)

    @classmethod
    def empty(cls, spec: ModelSpec, batch: int) -> KVCache:
        """A cache for ``batch`` sequences of at most ``spec.seq_len`` positions."""
        shape = (batch, spec.heads, spec.seq_len, spec.head_dim)
        return cls(keys=[np.zeros(shape, np.float32) for _ in range(spec.layers)],
                   values=[np.zeros(shape, np.float32) for _ in range(spec.layers)],
                   batch=batch)


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    b, t, c = x.shape
    return x.reshape(b, t, heads, c // heads).transpose(0, 2, 1, 3)  # [B,H,T,D]


def attention(x: np.ndarray, params: dict[str, np.ndarray], prefix: str, spec: ModelSpec,
              cache: KVCache | None, layer: int) -> np.ndarray:
    """Causal self-attention of the new positions ``x`` [B,T,C] -> [B,T,C].

    With a cache, the new keys and values are stored at positions ``cache.length ...`` and
    each new query attends to every cached position and to the new ones up to itself.
    """
    b, t, c = x.shape
    qkv = x @ params[f"{prefix}.attn.c_attn.weight"] + params[f"{prefix}.attn.c_attn.bias"]
    q, k, v = (_split_heads(part, spec.heads) for part in np.split(qkv, 3, axis=-1))
    past = 0
    if cache is not None:
        past = cache.length
        cache.keys[layer][:, :, past:past + t] = k
        cache.values[layer][:, :, past:past + t] = v
        k = cache.keys[layer][:, :, :past + t]  # [B,H,L+T,D]
        v = cache.values[layer][:, :, :past + t]
    scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(spec.head_dim))  # [B,H,T,L+T]
    # query i sits at absolute position past + i and may see keys 0 .. past + i
    future = np.arange(past + t)[None, :] > (past + np.arange(t))[:, None]  # [T,L+T]
    scores = np.where(future, np.float32(-np.inf), scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    y = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, c)  # [B,T,C]
    return y @ params[f"{prefix}.attn.c_proj.weight"] + params[f"{prefix}.attn.c_proj.bias"]


def block(x: np.ndarray, params: dict[str, np.ndarray], spec: ModelSpec, layer: int,
          cache: KVCache | None) -> np.ndarray:
    """One pre-LN transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""
    p = f"transformer.h.{layer}"
    x = x + attention(layer_norm(x, params[f"{p}.ln_1.weight"], params[f"{p}.ln_1.bias"]),
                      params, p, spec, cache, layer)
    h = layer_norm(x, params[f"{p}.ln_2.weight"], params[f"{p}.ln_2.bias"])
    h = gelu_new(h @ params[f"{p}.mlp.c_fc.weight"] + params[f"{p}.mlp.c_fc.bias"])  # [B,T,F]
    return x + h @ params[f"{p}.mlp.c_proj.weight"] + params[f"{p}.mlp.c_proj.bias"]


def forward_logits(params: dict[str, np.ndarray], spec: ModelSpec, tokens: np.ndarray,
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
    x = params[WTE][tokens] + params[WPE][past:past + t]  # [B,T,C]
    x = x.astype(np.float32, copy=False)
    for layer in range(spec.layers):
        x = block(x, params, spec, layer, cache)
    if cache is not None:
        cache.length += t
    x = layer_norm(x, params[LN_F[0]], params[LN_F[1]])
    head = params[tensor_table(spec).source(LM_HEAD)]  # [V,C]: wte when tied
    return np.asarray(x @ head.T, dtype=np.float32)


class GPT:
    """A loaded GPT-2 (spec + named weights) behind the :class:`LanguageModel` interface."""

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
