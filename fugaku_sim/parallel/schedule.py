"""Pipeline schedules: the order in which one stage runs its forward and backward passes.

Pure functions shared by the simulator (which times the ops) and the trainer (which runs
them). An op is a forward (``F``) or backward (``B``) pass of one micro-batch through one
model chunk of the stage. Dependencies, which the engines enforce, are not part of the order:
F(mb) on virtual stage v needs F(mb) of v - 1; B(mb) on v needs B(mb) of v + 1 and F(mb) of v.

Schedules (p stages, m micro-batches, v chunks per stage):

- ``gpipe``: all forwards, then all backwards (Huang et al., 2019). Holds m activations.
- ``1f1b``: min(p - s - 1, m) warm-up forwards, then one forward one backward, then the
  remaining backwards (PipeDream-Flush; Narayanan et al., 2021). Holds at most p - s.
- ``interleaved``: 1F1B over v model chunks per stage (Narayanan et al., SC21, section 2.2.2),
  in the order of Megatron-LM's ``forward_backward_pipelining_with_interleaving``; m must be
  a multiple of p.

Example, p = 4 stages, m = 4, stage 1 under 1F1B: ``F0 F1 F2 B0 F3 B1 B2 B3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["1f1b", "gpipe", "interleaved"]


@dataclass(frozen=True)
class PipelineOp:
    """One pass of one micro-batch through one model chunk of a stage."""

    kind: Literal["F", "B"]
    micro_batch: int
    chunk: int = 0

    def __str__(self) -> str:
        tail = f".{self.chunk}" if self.chunk else ""
        return f"{self.kind}{self.micro_batch}{tail}"


def pipeline_schedule(
    kind: ScheduleKind, stages: int, stage: int, micro_batches: int, chunks: int = 1
) -> list[PipelineOp]:
    """The ordered ops of ``stage`` (0-based) for one training step.

    Raises:
        ValueError: bad degrees, or an interleaved schedule whose micro-batches are not a
            multiple of the stages.
    """
    warmup = warmup_forwards(kind, stages, stage, micro_batches, chunks)
    if kind == "gpipe":
        return gpipe_schedule(micro_batches)
    if kind == "1f1b":
        return one_f_one_b_schedule(micro_batches, warmup)
    return interleaved_schedule(stages, micro_batches, chunks, warmup)


def warmup_forwards(
    kind: ScheduleKind, stages: int, stage: int, micro_batches: int, chunks: int = 1
) -> int:
    """Forwards ``stage`` runs before its first backward less the steady phase's first one:
    all passes for GPipe (and for interleaving when m = p), p - s - 1 for 1F1B, and
    2(p - s - 1) + (v - 1)p for interleaving, each at most the passes there are.

    Raises:
        ValueError: as :func:`pipeline_schedule`.
    """
    if stages < 1 or micro_batches < 1 or chunks < 1 or not 0 <= stage < stages:
        raise ValueError(f"bad schedule: stages={stages} stage={stage} m={micro_batches}")
    if kind == "gpipe":
        return micro_batches
    if kind == "1f1b":
        return min(stages - stage - 1, micro_batches)
    if kind != "interleaved":
        raise ValueError(f"unknown pipeline schedule {kind!r}")
    if micro_batches % stages:
        raise ValueError(
            f"interleaved schedule needs micro-batches ({micro_batches}) "
            f"to be a multiple of stages ({stages})"
        )
    total = micro_batches * chunks
    if micro_batches == stages:
        return total
    return min((stages - stage - 1) * 2 + (chunks - 1) * stages, total)


def schedule_in_flight(
    kind: ScheduleKind, stages: int, stage: int, micro_batches: int, chunks: int = 1
) -> int:
    """``max_in_flight(pipeline_schedule(...))`` without listing the ops: the warm-up forwards
    plus the steady phase's first forward, or every pass when there is no steady phase.
    O(1), so a step of millions of micro-batches is sized at once.

    >>> schedule_in_flight("1f1b", 4, 1, 4), schedule_in_flight("interleaved", 4, 0, 8, 2)
    (3, 11)

    Raises:
        ValueError: as :func:`pipeline_schedule`.
    """
    warmup = warmup_forwards(kind, stages, stage, micro_batches, chunks)
    return min(warmup + 1, micro_batches * (chunks if kind == "interleaved" else 1))


def gpipe_schedule(micro_batches: int) -> list[PipelineOp]:
    """All forwards, then all backwards."""
    fwd = [PipelineOp("F", i) for i in range(micro_batches)]
    return fwd + [PipelineOp("B", i) for i in range(micro_batches)]


def one_f_one_b_schedule(micro_batches: int, warmup: int) -> list[PipelineOp]:
    """Warm-up forwards, steady one-forward-one-backward, cool-down backwards."""
    ops = [PipelineOp("F", i) for i in range(warmup)]
    for i in range(micro_batches - warmup):
        ops.append(PipelineOp("F", warmup + i))
        ops.append(PipelineOp("B", i))
    ops += [PipelineOp("B", i) for i in range(micro_batches - warmup, micro_batches)]
    return ops


def _interleaved_op(kind: Literal["F", "B"], k: int, stages: int, chunks: int) -> PipelineOp:
    """The k-th forward or backward op of the interleaved schedule (Megatron's numbering)."""
    in_group = k % (stages * chunks)
    chunk = in_group // stages
    if kind == "B":
        chunk = chunks - 1 - chunk
    micro_batch = (k // (stages * chunks)) * stages + in_group % stages
    return PipelineOp(kind, micro_batch, chunk)


def interleaved_schedule(
    stages: int, micro_batches: int, chunks: int, warmup: int
) -> list[PipelineOp]:
    """Megatron's interleaved 1F1B over ``chunks`` model chunks per stage."""
    total = micro_batches * chunks
    ops = [_interleaved_op("F", k, stages, chunks) for k in range(warmup)]
    for i in range(total - warmup):
        ops.append(_interleaved_op("F", warmup + i, stages, chunks))
        ops.append(_interleaved_op("B", i, stages, chunks))
    ops += [_interleaved_op("B", k, stages, chunks) for k in range(total - warmup, total)]
    return ops


def max_in_flight(ops: list[PipelineOp]) -> int:
    """Largest number of forwards whose backward has not yet run (activations held)."""
    live = peak = 0
    for op in ops:
        live += 1 if op.kind == "F" else -1
        peak = max(peak, live)
    return peak
