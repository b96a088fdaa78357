"""ModelSpec: the network ("what") — a decoder-only transformer of the GPT-2 or Llama family."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.limits import MAX_FFN_HIDDEN, MAX_HIDDEN, MAX_LAYERS, MAX_SEQ_LEN, MAX_VOCAB

NormKind = Literal["layernorm", "rmsnorm"]
MlpKind = Literal["gelu", "swiglu"]
PositionKind = Literal["learned", "rotary"]
Family = Literal["gpt2", "llama"]

#: the architecture choices of each family: (norm, mlp, positions)
FAMILIES: dict[Family, tuple[NormKind, MlpKind, PositionKind]] = {
    "gpt2": ("layernorm", "gelu", "learned"),  # Radford et al. 2019
    "llama": ("rmsnorm", "swiglu", "rotary"),  # Touvron et al. 2023, section 2.2
}
#: the dropout probability a family trains with when the model does not give ``dropout``
FAMILY_DROPOUT: dict[Family, float] = {
    # Hugging Face GPT2Config: resid_pdrop = embd_pdrop = attn_pdrop = 0.1; Megatron-LM's
    # --hidden-dropout and --attention-dropout default to 0.1 (megatron/training/arguments.py)
    "gpt2": 0.1,
    # Hugging Face LlamaConfig: no hidden dropout, attention_dropout 0.0
    "llama": 0.0,
}


class ModelSpec(SpecModel):
    """A causal pre-norm transformer. Two families share the fields:

    - GPT-2 (the default): layer norm, GELU MLP of ``ffn_hidden`` (default 4 x ``hidden``),
      learned positions, biases on every linear layer;
    - Llama: RMSNorm (Zhang and Sennrich 2019), SwiGLU MLP (Shazeer 2020) whose width
      ``ffn_hidden`` must be given, rotary positions with base ``rope_theta`` (Su et al.
      2021), usually no biases and an untied head.

    Either family may use grouped-query attention (Ainslie et al. 2023): ``kv_heads`` key and
    value heads shared by ``heads`` query heads (default ``heads``: multi-head attention;
    1: multi-query attention).

    ``dropout`` is the probability of the dropouts in training (of the embeddings, the
    attention probabilities and both residual branches: Hugging Face's ``embd_pdrop``,
    ``attn_pdrop`` and ``resid_pdrop``, Megatron-LM's ``--hidden-dropout`` and
    ``--attention-dropout``); unset, the family's (:data:`FAMILY_DROPOUT`: GPT-2 0.1, Llama
    none). The simulator charges the dropouts' work and their masks' memory only when it is
    above 0; the numpy trainer has no dropout, so it trains a model whose ``dropout`` is 0
    (a GPT-2 model must say so). Shapes use the nanoGPT key: B batch, T sequence (``seq_len``),
    C channels (``hidden``), V vocabulary (``vocab``).
    """

    name: str = Field(min_length=1)
    layers: int = Field(gt=0, le=MAX_LAYERS)
    hidden: int = Field(gt=0, le=MAX_HIDDEN)
    heads: int = Field(gt=0)
    ffn_hidden: int | None = Field(default=None, gt=0, le=MAX_FFN_HIDDEN)
    seq_len: int = Field(gt=0, le=MAX_SEQ_LEN)
    vocab: int = Field(gt=0, le=MAX_VOCAB)
    tied_embeddings: bool = True
    norm: NormKind = "layernorm"
    norm_eps: float = Field(default=1e-5, gt=0, lt=1)
    mlp: MlpKind = "gelu"
    positions: PositionKind = "learned"
    rope_theta: float = Field(default=10000.0, gt=0)
    kv_heads: int | None = Field(default=None, gt=0, description="key/value heads (GQA)")
    bias: bool = True
    dropout: float | None = Field(default=None, ge=0, lt=1,
                                  description="dropout probability in training (unset: the "
                                              "family's, GPT-2 0.1, Llama 0)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"hidden: {self.hidden} is not divisible by heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(
                f"kv_heads: {self.kv_heads} does not divide heads ({self.heads}); each key/value "
                "head serves an equal group of query heads"
            )
        choice = (self.norm, self.mlp, self.positions)
        if choice not in FAMILIES.values():
            families = "; ".join(f"{name}: {', '.join(c)}" for name, c in FAMILIES.items())
            raise ValueError(
                f"norm, mlp, positions: {', '.join(choice)} is not a supported family ({families})"
            )
        if self.mlp == "swiglu" and self.ffn_hidden is None:
            raise ValueError("ffn_hidden: give the gated MLP's width (Llama-2-7B: 11008)")
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"heads: rotary positions need an even head size, got {self.head_dim}")
        return self

    @property
    def family(self) -> Family:
        """``gpt2`` or ``llama`` (see :data:`FAMILIES`)."""
        return "llama" if self.mlp == "swiglu" else "gpt2"

    @property
    def dropout_rate(self) -> float:
        """The dropout probability in training: ``dropout``, or the family's."""
        return FAMILY_DROPOUT[self.family] if self.dropout is None else self.dropout

    @property
    def kv(self) -> int:
        """Key/value heads (``heads`` for multi-head attention)."""
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def ffn(self) -> int:
        """Width of the MLP's hidden layer."""
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.hidden

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads
