"""What a training run needs before it starts: its options, checked, and the data opened.

Everything a user can get wrong is checked here, before any file is written, and reported as
one :class:`UserError` naming what to fix: a layout that does not match the number of ranks,
a model that does not split over tp or pp, a batch that does not split over micro-batches,
a missing blend file or shard, a checkpoint of another model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fugaku_sim.data.blend import Blend, read_blend
from fugaku_sim.errors import UserError
from fugaku_sim.io import check_output_path
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec
from fugaku_sim.spec.figures import run_steps
from fugaku_sim.spec.job import check_batch, check_model_split, check_modelled
from fugaku_sim.train.checkpoint import Selection, select_checkpoint, trained_model


@dataclass(frozen=True)
class RunOptions:
    """Options of a run that are not part of the shared spec."""

    data: Path
    out: Path
    checkpoint_every: int | None = None  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 3  # newest checkpoints kept; older ones are deleted (>= 2: fallback)
    eval_every: int | None = None  # steps; validation also runs at the end
    eval_iters: int = 1  # global batches of the valid split per validation
    resume: Literal["auto", "never"] = "auto"
    steps_per_job: int | None = None  # train at most this many steps, save, stop (a chain job)
    fail_at_step: int | None = None  # fault injection: fail when step K starts
    fail_rank: int | None = None  # which rank fails (default: the last)
    fail_mode: Literal["raise", "exit"] = "raise"
    progress: bool = True
    log_interval: int = 1  # steps between progress lines (a batch log)
    warmup_timing_steps: int = 2  # steps left out of the summary's means


def check_layout(model: ModelSpec, train: TrainSpec, layout: Layout, world: int) -> None:
    """The spec rules the simulator applies, plus the trainer's own.

    Raises:
        UserError: naming the field (``layout.tp``, ``model.vocab``, ...).
    """
    check_model_split(model, layout)  # the same rules as ``check``/``predict``
    check_batch(train, layout)
    check_modelled(model, train, layout, "train")
    if model.vocab % layout.tp:
        raise UserError(f"layout.tp: {layout.tp} does not divide model.vocab ({model.vocab}); "
                        "the vocabulary-parallel embedding needs equal shards")
    check_trainable(model, train)
    if layout.world != world:
        raise UserError(f"layout: tp x pp x dp = {layout.tp} x {layout.pp} x {layout.dp} = "
                        f"{layout.world} ranks, but the job has {world} "
                        f"(launch with mpiexec -n {layout.world})")


def check_trainable(model: ModelSpec, train: TrainSpec) -> None:
    """The trainer's rules that hold whatever the layout (checked by the workflow before
    its plan chooses one): features it computes (no dropout: an unset ``model.dropout`` is
    trained as 0, see :func:`~fugaku_sim.train.checkpoint.trained_model`), fp32.

    Raises:
        UserError: naming the field.
    """
    check_modelled(model, train, Layout(), "train")
    if model.dropout:
        raise UserError(f"model.dropout: {model.dropout:g}: the numpy trainer computes "
                        "without dropout; set model.dropout: 0")
    if train.precision != "fp32":
        raise UserError(f"train.precision: the numpy trainer computes in fp32, not "
                        f"{train.precision}")


def check_tokenizer_fits(vocab_size: int, model: ModelSpec, what: str) -> None:
    """Raises UserError if a tokenizer of ``vocab_size`` pieces (named ``what``) gives ids
    beyond the model's embedding."""
    if vocab_size > model.vocab:
        raise UserError(f"{what}: the tokenizer's vocabulary ({vocab_size}) exceeds "
                        f"model.vocab ({model.vocab})")


def total_steps(model: ModelSpec, train: TrainSpec) -> int:
    """Optimizer steps: ``train.steps``, or enough global batches for ``train.tokens``.

    Raises:
        UserError: neither is set.
    """
    steps = run_steps(train, model)
    if steps is None:
        raise UserError("train.steps: not set by the model preset; pass --steps or --tokens")
    return steps


def check_blend(blend: Blend, model: ModelSpec) -> None:
    """Raises UserError if the data cannot feed ``model``."""
    if not blend.splits.get("train"):
        raise UserError("--data: the blend file lists no train shards")
    check_tokenizer_fits(blend.vocab_size, model, "--data")


def check_options(opts: RunOptions, world: int) -> None:
    for name in ("checkpoint_every", "eval_every", "steps_per_job", "fail_at_step"):
        value = getattr(opts, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')}: must be >= 1 (got {value})")
    if opts.keep_checkpoints < 2:
        raise UserError(f"--keep-checkpoints: must be >= 2, so a corrupt newest checkpoint "
                        f"has one to fall back to (got {opts.keep_checkpoints})")
    if opts.eval_iters < 1:
        raise UserError(f"--eval-iters: must be >= 1 (got {opts.eval_iters})")
    if opts.fail_rank is not None and not 0 <= opts.fail_rank < world:
        raise UserError(f"--fail-rank: {opts.fail_rank} is not a rank of {world}")


@dataclass(frozen=True)
class Plan:
    """A checked run: the specs, the step count, the blend and where to resume from."""

    model: ModelSpec
    train: TrainSpec
    layout: Layout
    opts: RunOptions
    steps: int
    blend: Blend
    resume: Selection
    notes: tuple[str, ...] = ()  # what the run does otherwise than the specs may suggest


def plan_run(model: ModelSpec, train: TrainSpec, layout: Layout, opts: RunOptions,
             world: int, open_data: bool = True, select: bool = True) -> Plan:
    """Check everything and pick the checkpoint to resume from (reads, never writes).

    With ``open_data`` the shards are opened too (a missing one is reported here); with
    ``select`` the checkpoints are checked and chosen (under MPI rank 0 does it and
    broadcasts its choice, so that every rank resumes from the same one).

    Raises:
        UserError: the first problem found.
    """
    check_layout(model, train, layout, world)
    check_options(opts, world)
    check_output_path(opts.out, f"--out {opts.out}", folder=True)
    steps = total_steps(model, train)
    blend = read_blend(opts.data)
    check_blend(blend, model)
    if open_data:
        from fugaku_sim.train.loader import open_split

        for split in ("train", "valid"):  # rank 0 (``select``) alone scans the token ids
            open_split(blend.shards(split, opts.data), split, model.seq_len, train.seed, 1,
                       model.vocab, check_ids=select)
    notes = (f"model.dropout is unset (the {model.family} family trains with "
             f"{model.dropout_rate:g}); the numpy trainer has no dropout and records "
             "dropout: 0",) if model.dropout is None and model.dropout_rate else ()
    model = trained_model(model)  # what the checkpoints, summary and release then record
    selection = Selection(None)
    if opts.resume == "auto" and select:
        selection = select_checkpoint(opts.out, model)
    return Plan(model, train, layout, opts, steps, blend, selection, notes)
