"""Figures of a training run that follow from the model, training settings and layout alone.

No cluster is needed, so the trainer and the simulator take them from here and price and run
the same step:

- micro-batches per pipeline per optimizer step (gradient accumulation):
  global batch / (micro-batch x dp), Megatron-LM's ``num_micro_batches``;
- tokens per optimizer step: global batch x sequence length;
- optimizer steps of a run: ``train.steps``, or enough whole steps to see ``train.tokens``
  (a spec gives one or the other, never both: :class:`~fugaku_sim.spec.train.TrainSpec`);
- bytes per element of weights, gradients, activations and messages at the training precision
  (IEEE 754 binary32 is 4 bytes; binary16 and bfloat16 are 2);
- tokens of a sequence one tensor rank holds outside the tensor-parallel regions (its
  norms, residuals and pipeline messages): T, or T / tp under sequence parallelism
  (Korthikanti et al. 2022, section 4.2.2).

Worked example (Fugaku-LLM: global batch 2016, micro-batch 1, dp 288, sequence 2048, 380e9
tokens): 7 micro-batches per replica, 4,128,768 tokens per step, 92,038 steps.
"""

from __future__ import annotations

import math

from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.spec.train import TrainPrecision, TrainSpec

#: bytes of one element at each training precision
ELEMENT_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2}


def element_bytes(precision: TrainPrecision) -> int:
    """Bytes of one weight, gradient or activation element at ``precision``."""
    return ELEMENT_BYTES[precision]


def sequences_per_replica(train: TrainSpec, dp: int) -> int:
    """Sequences one data-parallel replica processes per optimizer step."""
    return train.global_batch // dp


def micro_batches_per_replica(train: TrainSpec, layout: Layout) -> int:
    """Micro-batches each pipeline runs per optimizer step (gradient-accumulation steps).

    >>> micro_batches_per_replica(TrainSpec(global_batch=2016), Layout(tp=6, pp=8, dp=288))
    7
    """
    return sequences_per_replica(train, layout.dp) // train.micro_batch


def tokens_per_step(train: TrainSpec, model: ModelSpec) -> int:
    """Tokens of one optimizer step (the global batch)."""
    return train.global_batch * model.seq_len


def run_steps(train: TrainSpec, model: ModelSpec) -> int | None:
    """Optimizer steps of the run: ``train.steps``, or the whole steps that cover
    ``train.tokens`` (rounded up); None when neither is set."""
    if train.steps is not None:
        return train.steps
    if train.tokens is not None:
        return math.ceil(train.tokens / tokens_per_step(train, model))
    return None


def sequence_shard_tokens(model: ModelSpec, layout: Layout) -> int:
    """Tokens of each sequence a tensor rank holds between tensor-parallel regions: the
    sequence length, split over tp under sequence parallelism (the spec requires tp to
    divide it)."""
    return model.seq_len // layout.tp if layout.sequence_parallel else model.seq_len
