"""ModelSpec: the network ("what") — a GPT-2-style decoder-only transformer."""

from __future__ import annotations

from pydantic import Field, model_validator

from fugaku_sim.spec.base import SpecModel


class ModelSpec(SpecModel):
    """A GPT: learned positions, pre-layer-norm blocks, GELU MLP, causal attention.

    ``ffn_hidden`` defaults to 4 x ``hidden`` as in GPT-2. Shapes use the nanoGPT key:
    B batch, T sequence (``seq_len``), C channels (``hidden``), V vocabulary (``vocab``).
    """

    name: str = Field(min_length=1)
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    ffn_hidden: int | None = Field(default=None, gt=0)
    seq_len: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelSpec:
        if self.hidden % self.heads:
            raise ValueError(f"hidden: {self.hidden} is not divisible by heads ({self.heads})")
        return self

    @property
    def ffn(self) -> int:
        """Width of the MLP's hidden layer."""
        return self.ffn_hidden if self.ffn_hidden is not None else 4 * self.hidden

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads
