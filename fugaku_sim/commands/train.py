"""``fugaku-sim train``: train a GPT over MPI with tensor, pipeline and data parallelism.

Launch with ``mpiexec -n N python -m fugaku_sim.cli train ...`` (or ``srun``) with
N = tp x pp x dp. Every rank checks the options; if any rank finds a problem, rank 0 prints
it on one line and every rank exits 2 before anything is written (the checks include the
output folder, the checkpoint index and every token id of the shards against the model's
vocabulary, so none of these surfaces mid-run). Once training runs, a rank
that fails prints one line and calls ``MPI_Abort``, which ends every rank of the job (never a
hang); the exit status is then non-zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fugaku_sim.commands.common import add_job_arguments, positive_int, resolve_specs
from fugaku_sim.errors import UserError

if TYPE_CHECKING:
    from fugaku_sim.train.run_plan import Plan

T = TypeVar("T")


ABORT_GRACE_S = 1.0  # seconds between a failing rank's last line and MPI_Abort


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser, cluster=False)
    parser.set_defaults(model="gpt-tiny")
    r = parser.add_argument_group("run")
    r.add_argument("--data", default="results/data", type=Path,
                   help="data directory with blend.json and the shards")
    r.add_argument("--out", default="results/train", type=Path, help="output directory")
    r.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N steps")
    r.add_argument("--keep-checkpoints", type=int, default=3, metavar="K",
                   help="keep the newest K checkpoints, delete older ones (default 3, min 2)")
    r.add_argument("--eval-every", type=int, metavar="N",
                   help="validation loss every N steps (and at the end)")
    r.add_argument("--eval-iters", type=int, default=1,
                   help="global batches of the valid split per validation")
    r.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from the newest intact checkpoint in --out")
    r.add_argument("--steps-per-job", type=int, metavar="K",
                   help="train at most K steps, save a checkpoint and exit 0 (one job of a "
                   "chain: the next job resumes with --resume auto)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--log-interval", type=positive_int, default=1, metavar="N",
                   help="a progress line every N steps when stderr is not a terminal (a "
                   "batch job's log; default 1, as Megatron-LM's --log-interval)")
    f = parser.add_argument_group("fault injection (tests)")
    f.add_argument("--fail-at-step", type=int, metavar="K", help="fail when step K starts")
    f.add_argument("--fail-rank", type=int, help="the rank that fails (default: the last)")
    f.add_argument("--fail-mode", choices=["raise", "exit"], default="raise",
                   help="raise an exception, or exit at once without a word")


def build_plan(args: argparse.Namespace, world: int, select: bool = True) -> Plan:
    """Specs from the options, checked into a :class:`fugaku_sim.train.run_plan.Plan`
    (``select``: also choose the checkpoint to resume from).

    Raises:
        UserError: any bad input (names the field or option).
    """
    from fugaku_sim.train.run_plan import RunOptions, plan_run

    model, train, layout = resolve_specs(args)
    opts = RunOptions(
        data=args.data, out=args.out, checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        eval_every=args.eval_every, eval_iters=args.eval_iters, resume=args.resume,
        steps_per_job=args.steps_per_job,
        fail_at_step=args.fail_at_step, fail_rank=args.fail_rank, fail_mode=args.fail_mode,
        progress=not args.no_progress, log_interval=args.log_interval)
    return plan_run(model, train, layout, opts, world, select=select)


def agree(world: Any, check: Callable[[], T]) -> tuple[T | None, str | None]:
    """``check()`` on every rank, and the first error any rank met: every rank learns it,
    so all go on or all stop together (a rank that raised alone would leave the others
    waiting in the next collective: a hang).

    Returns:
        (this rank's value, or None if it failed; the first rank's error, or None).
    """
    value, error = None, None
    try:
        value = check()
    except UserError as exc:
        error = str(exc)
    except Exception as exc:  # a bug, not bad input: still reach the allgather, never a hang
        error = f"rank {world.rank}: {type(exc).__name__}: {exc} (a bug: please report it)"
    return value, next((e for e in world.allgather(error) if e), None)


def run(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from fugaku_sim.train.allocator import keep_freed_memory
    from fugaku_sim.train.checkpoint import read_global_state

    keep_freed_memory()

    world = MPI.COMM_WORLD
    # every rank checks; rank 0 alone chooses the checkpoint and tells the others
    plan, error = agree(world, lambda: build_plan(args, world.size, select=world.rank == 0))
    state = None
    if error is None:
        assert plan is not None
        plan = dataclasses.replace(plan, resume=world.bcast(plan.resume, root=0))
        directory = plan.resume.directory
        # every rank reads the whole checkpoint (it re-shards); a corrupt part is found by
        # all of them here, before the first collective of training
        state, error = agree(world, lambda: None if directory is None else read_global_state(
            directory, plan.model))
    if error is not None:
        if world.rank == 0:
            raise UserError(error)
        return 2
    assert plan is not None
    for note in plan.notes if world.rank == 0 else ():
        print(f"fugaku-sim: note: {note}", file=sys.stderr, flush=True)
    if plan.resume.skipped and world.rank == 0:
        print(f"fugaku-sim: warning: skipped corrupt checkpoint(s) {'; '.join(plan.resume.skipped)}"
              f"; resuming from {plan.resume.directory.name if plan.resume.directory else '-'}",
              file=sys.stderr, flush=True)
    try:
        from fugaku_sim.train.trainer import Trainer

        summary = Trainer(plan, world).run(state)
    except BaseException as exc:  # any failure on any rank ends the whole job
        print(f"fugaku-sim: error: rank {world.rank}: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        # give the launcher a moment to forward that line: MPICH's Hydra tears the job down
        # on Abort without draining the ranks' output (a fresh-clone CI run lost it once)
        time.sleep(ABORT_GRACE_S)
        world.Abort(1)
        return 1
    if world.rank == 0 and "stopped_at_step" in summary:
        print(f"stopped at step {summary['stopped_at_step']} of {summary['steps']} "
              f"(--steps-per-job {args.steps_per_job}): checkpoint {summary['checkpoint']}; "
              "the next job resumes from it")
    elif world.rank == 0:
        print(f"trained {summary['steps']} steps: loss {summary['final_train_loss']}, "
              f"{summary['tokens_per_s_mean']:.0f} tokens/s -> {plan.opts.out}")
    return 0
