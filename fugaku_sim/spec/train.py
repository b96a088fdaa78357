"""TrainSpec: how the model is trained — batch, tokens, precision, optimizer, memory savers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.limits import (
    MAX_BUCKET_MB,
    MAX_GLOBAL_BATCH,
    MAX_LAYERS,
    MAX_STEPS,
    MAX_TOKENS,
)

RecomputeMode = Literal["none", "selective", "all", "first-half", "stages"]
TrainPrecision = Literal["fp32", "fp16", "bf16"]
OptimizerKind = Literal["adam", "adamw", "sgd"]
ZeroStage = Literal[0, 1, 2, 3]
AttentionKind = Literal["materialized", "flash"]

#: ZeRO-2/3 gradient-bucket reductions outstanding at once with ``overlap_grad_reduce``
#: (launching one more first completes the oldest; DeepSpeed double-buffers its
#: ``overlap_comm`` reduction buckets the same way): the trainer's bound on the bucket
#: buffers alive beside the one being filled, and the simulator's count of them
ZERO_BUCKETS_IN_FLIGHT = 2


class TrainSpec(SpecModel):
    """Training settings shared by the simulator and the trainer.

    Recomputation is chosen per pipeline stage. Full recomputation (activation checkpointing
    of each transformer layer: only its input is kept, the whole forward runs again before its
    backward): ``none``, ``all``, ``first-half`` (stages 0 .. pp/2-1, which hold the most
    micro-batches in flight under 1F1B; Fugaku-LLM recomputed stages 0-3 of 8), or ``stages``
    with an explicit ``recompute_stages`` list. Selective recomputation (Korthikanti et al.
    2022, section 4.2: every activation is kept except the attention scores, softmax and its
    dropout, recomputed in the backward): ``selective`` on every stage, or, with a
    ``recompute_stages`` list, full recomputation on those stages and selective on the rest.

    ``zero_stage`` shards over the data-parallel ranks (Rajbhandari et al. 2020): 1 the
    optimizer states, 2 also the gradients (reduce-scattered as they are produced), 3 also the
    weights (gathered per layer for the forward and the backward, freed after).

    ``attention`` is how the attention scores are computed: ``materialized`` (the [B, A, T, T]
    scores and probabilities in memory, kept for the backward) or ``flash`` (Dao et al. 2022,
    FlashAttention-2 in Dao 2023: one fused kernel that keeps them on chip and recomputes them
    in the backward, as Megatron-LM's ``--use-flash-attn`` and Transformer Engine do).

    The run's length is ``steps`` or ``tokens`` (rounded up to whole steps), never both, so
    the trainer and the simulator agree on it (:func:`fugaku_sim.spec.figures.run_steps`).
    """

    global_batch: int = Field(gt=0, le=MAX_GLOBAL_BATCH,
                              description="sequences per optimizer step")
    micro_batch: int = Field(default=1, gt=0, description="sequences per micro-batch")
    tokens: float | None = Field(
        default=None, gt=0, le=MAX_TOKENS, description="tokens to train on in all (or give steps)"
    )
    steps: int | None = Field(default=None, gt=0, le=MAX_STEPS,
                              description="optimizer steps (or give tokens)")
    precision: TrainPrecision = "fp32"
    optimizer: OptimizerKind = "adamw"
    zero_stage: ZeroStage = 0
    recompute: RecomputeMode = "none"
    recompute_stages: list[int] = Field(default_factory=list, max_length=MAX_LAYERS)
    overlap_grad_reduce: bool = False
    attention: AttentionKind = "materialized"
    grad_bucket_MB: float = Field(default=25.0, gt=0, le=MAX_BUCKET_MB)
    lr: float = Field(default=6e-4, gt=0)
    min_lr: float = Field(default=6e-5, ge=0)
    warmup_steps: int = Field(default=10, ge=0, le=MAX_STEPS)
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    grad_clip: float = Field(default=1.0, ge=0, description="0 disables clipping")
    seed: int = Field(default=1234, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TrainSpec:
        if self.global_batch % self.micro_batch:
            raise ValueError(
                f"global_batch: {self.global_batch} is not a multiple of "
                f"micro_batch ({self.micro_batch})"
            )
        if self.tokens is not None and self.steps is not None:
            raise ValueError(
                f"steps: give steps ({self.steps}) or tokens ({self.tokens:g}), not both"
            )
        if self.recompute == "stages" and not self.recompute_stages:
            raise ValueError("recompute_stages: give at least one stage when recompute is 'stages'")
        if self.recompute not in ("stages", "selective") and self.recompute_stages:
            raise ValueError(
                "recompute_stages: only used when recompute is 'stages' (full) or 'selective' "
                "(full on the listed stages, selective on the rest)"
            )
        if any(not 0 <= s < MAX_LAYERS for s in self.recompute_stages):
            raise ValueError(f"recompute_stages: stage numbers must be >= 0 and below "
                             f"{MAX_LAYERS} (each stage holds a layer)")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr: {self.min_lr} is above lr ({self.lr})")
        return self

    def recompute_stage_set(self, pp: int) -> frozenset[int]:
        """The pipeline stages (0-based, of ``pp``) that recompute whole layers (full)."""
        if self.recompute == "none":
            return frozenset()
        if self.recompute == "selective":
            return frozenset(self.recompute_stages)
        if self.recompute == "all":
            return frozenset(range(pp))
        if self.recompute == "first-half":
            return frozenset(range(max(1, pp // 2))) if pp > 1 else frozenset({0})
        return frozenset(self.recompute_stages)

    def selective_stage_set(self, pp: int) -> frozenset[int]:
        """The pipeline stages (0-based, of ``pp``) that recompute only the attention core."""
        if self.recompute != "selective":
            return frozenset()
        return frozenset(range(pp)) - frozenset(self.recompute_stages)
