"""``fugaku-sim plan``: rank every valid layout of a model on a node count, or goal-seek the
node count for a deadline or a budget.

``--nodes N`` enumerates (tp, pp, dp, micro-batch, placement, schedule, sequence
parallelism, recomputation, ZeRO stage; :mod:`fugaku_sim.sim.plan`), drops layouts that do not
fit memory, predicts the rest and sorts them by throughput; the table shows a column for every
choice that differs between the layouts it lists, and why the first wins (``--json``: the
layouts under ``plans``, best first). ``--deadline DAYS`` and/or ``--budget NODE_HOURS``
instead search a ladder of node counts (:mod:`fugaku_sim.sim.goalseek`): the fastest layout of
each and its campaign (the model preset's ``campaign:`` section and the policy options), the
Pareto front of days against node-hours, and the smallest allocation that meets the deadline
with 90% probability (``--json``: one object, see
:meth:`fugaku_sim.sim.goalseek.GoalResult.to_json`, with the choice's layout record on top, so
``--layout-from`` reads it). ``--plot FILE`` charts either. ``--emit-job DIR`` writes the job
chain of the best layout this tool's trainer runs (or of the choice):
:mod:`fugaku_sim.sim.jobscript`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fugaku_sim.commands.campaign import _seeds, add_policy_arguments
from fugaku_sim.commands.common import (
    add_model_arguments,
    add_train_arguments,
    command_meta,
    count,
    positive_int,
    positive_number,
    print_json,
    resolve_specs,
    stack_from_args,
)
from fugaku_sim.errors import UserError
from fugaku_sim.io import check_output_path, plot_format
from fugaku_sim.spec.record import PLANS_KEY

if TYPE_CHECKING:  # the simulator is imported when the verb runs, not when the CLI starts
    from fugaku_sim.sim.predict import Prediction
    from fugaku_sim.spec import ClusterSpec, ModelSpec, TrainSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_train_arguments(parser)
    parser.add_argument("--nodes", type=positive_int, help="node count to plan for")
    parser.add_argument(
        "--processes-per-node", type=positive_int, metavar="K",
        help="MPI processes per node (default: the cluster profile's)",
    )
    parser.add_argument("--top", type=positive_int, help="show only the best K layouts")
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="also try the interleaved schedule (2 chunks per stage)",
    )
    parser.add_argument(
        "--engine", choices=("sim", "train"), default="sim",
        help="plan every choice the simulator models (sim), or only what this tool's trainer "
             "runs, for a training run (train)",
    )
    parser.add_argument("--json", action="store_true",
                        help="print JSON: the layouts under 'plans', best first, and 'meta' (a "
                        "goal-seek: its result object)")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG of every layout")
    parser.add_argument("--emit-job", metavar="DIR",
                        help="write the job chain of the best layout (job script, rank map, "
                        "layout record, submit script)")
    g = parser.add_argument_group("goal-seek (instead of --nodes)")
    g.add_argument("--deadline", type=positive_number, metavar="DAYS",
                   help="days to the token target, met with 90%% probability")
    g.add_argument("--budget", type=positive_number, metavar="NODE_HOURS",
                   help="node-hours the run may use, with 90%% probability")
    g.add_argument("--nodes-min", type=positive_int, metavar="N",
                   help="smallest node count to try (default: where the model's states fit "
                   "and 100%% of peak meets the deadline, or a year)")
    g.add_argument("--nodes-max", type=positive_int, metavar="N",
                   help="largest node count to try (default: the largest job the machine takes)")
    g.add_argument("--seeds", type=_seeds, default=200,
                   help="campaigns sampled per node count (default 200)")
    g.add_argument("--first-seed", type=count, default=0, help="seed of the first campaign")
    add_policy_arguments(parser)
    j = parser.add_argument_group("job scripts (--emit-job; default: the profile's scheduler)")
    j.add_argument("--group", help="PJM group charged for the jobs (#PJM -g)")
    j.add_argument("--account", help="Slurm account (#SBATCH --account)")
    j.add_argument("--partition", help="Slurm partition (#SBATCH --partition)")
    j.add_argument("--llio-volumes", metavar="VOLS",
                   help="volumes LLIO caches (PJM_LLIO_GFSCACHE), e.g. /vol0004:/vol0005")
    j.add_argument("--llio", action="append", metavar="OPTION",
                   help="#PJM --llio option, e.g. localtmp-size=50Gi (repeat for more)")
    j.add_argument("--setup", metavar="LINE",
                   help="shell line the job runs first (puts fugaku-sim on PATH)")
    j.add_argument("--train-data", default="results/data", metavar="DIR",
                   help="data folder the trainer reads, as the job sees it (relative to the "
                   "job folder, or absolute)")
    j.add_argument("--train-out", default="results/train", metavar="DIR",
                   help="the trainer's output folder (checkpoints), as the job sees it")
    parser.add_argument("--intervals-top", type=int, default=3, metavar="K",
                        help="p10/p50/p90 of step time and time to train for the best K "
                        "layouts (default 3; 0: none); the others get none")


def _spread(row: dict[str, Any]) -> str:
    iv = row.get("intervals")
    if not iv:
        return "-"
    q = iv["step_time_s"]
    return f"{q['p10']:.2f}..{q['p90']:.2f}"


def _table(rows: list[dict[str, Any]], title: str, notes: list[str]) -> None:
    """The layouts with a column for every choice that differs between them, what they
    share, why the first wins (:mod:`fugaku_sim.sim.plan_rows`), then ``notes``."""
    from rich.console import Console
    from rich.table import Table

    from fugaku_sim.sim.plan_rows import (
        METRICS,
        explain_winner,
        metric_cell,
        shared_text,
        split_dimensions,
    )

    differ, shared = split_dimensions(rows)
    caption = f"every layout: {shared_text(rows, shared)}" if shared else None
    t = Table(title=title, caption=caption)
    # the step time's p10..p90 beside the step time
    step, rest = METRICS[0], METRICS[1:]
    for heading in ["#", *(d.heading for d in differ), step[1], "p10..p90 s",
                    *(m[1] for m in rest)]:
        t.add_column(heading, justify="right")
    for i, r in enumerate(rows, 1):
        t.add_row(str(i), *(d.cell(r) for d in differ), metric_cell(r.get(step[0]), step[2]),
                  _spread(r), *(metric_cell(r.get(key), fmt) for key, _, fmt in rest))
    console = Console()
    console.width = max(console.width, 165)  # many columns: do not squeeze them in 80
    console.print(t)
    for note in notes:
        console.print(note, highlight=False)
    for line in explain_winner(rows):
        console.print(f"why #1: {line}", highlight=False)


def _cluster(args: argparse.Namespace) -> ClusterSpec:
    from fugaku_sim.spec import load_cluster

    cluster = load_cluster(args.cluster)
    if args.processes_per_node is not None:
        node = cluster.node.model_copy(update={"processes_per_node": args.processes_per_node})
        cluster = cluster.model_copy(update={"node": node})
    return cluster


def run(args: argparse.Namespace) -> int:
    seeking = args.deadline is not None or args.budget is not None
    if seeking and args.nodes is not None:
        raise UserError("--nodes: a goal-seek (--deadline/--budget) searches node counts; bound "
                        "the search with --nodes-min/--nodes-max instead")
    if not seeking and args.nodes is None:
        raise UserError("--nodes: give a node count, or --deadline/--budget to search for one")
    if args.plot:  # outputs checked before any work
        check_output_path(args.plot, f"--plot {args.plot}")
        plot_format(args.plot, f"--plot {args.plot}")
    if args.emit_job:
        check_output_path(args.emit_job, f"--emit-job {args.emit_job}", folder=True)
    cluster = _cluster(args)
    args.tp = args.pp = args.dp = None  # the plan chooses the layout
    model, train, _layout = resolve_specs(args)
    if seeking:
        from fugaku_sim.commands.plan_goal import run_goal

        return run_goal(args, cluster, model, train)
    return _run_nodes(args, cluster, model, train)


def _run_nodes(args: argparse.Namespace, cluster: ClusterSpec, model: ModelSpec,
               train: TrainSpec) -> int:
    from fugaku_sim.progress import Progress
    from fugaku_sim.sim.intervals import predict_intervals
    from fugaku_sim.sim.plan import no_layout_message, plan_layouts

    if args.intervals_top < 0:
        raise UserError(f"--intervals-top: must be 0 or more, got {args.intervals_top}")
    stack = stack_from_args(args)
    with Progress("plan") as progress:
        result = plan_layouts(cluster, model, train, args.nodes, interleaved=args.interleaved,
                              engine=args.engine,
                              progress=lambda done, total: progress.update(done, total, "layouts"),
                              stack=stack)
    if not result.predictions:
        raise UserError(no_layout_message(result, cluster, args.nodes))
    best = result.predictions[: args.top] if args.top else result.predictions
    rows = [p.to_json() for p in best]
    for i, (pred, row) in enumerate(zip(best, rows)):
        row["intervals"] = (predict_intervals(pred, result.setup_of(pred)).to_json()
                            if i < args.intervals_top else None)
    if args.emit_job:
        from fugaku_sim.sim.plan import trainer_runnable

        rank, chosen, why = trainer_runnable(result.predictions)
        if chosen is None:
            raise UserError(f"--emit-job: no layout of the plan runs in this tool's trainer "
                            f"(the best: {why})")
        if rank > 1:
            print(f"fugaku-sim plan: the job script runs layout #{rank}, the best one this "
                  f"tool's trainer runs (#1: {why})", file=sys.stderr)
        emit_job(args, chosen)
    if args.plot:
        from fugaku_sim.sim.plots import plot_plan

        plot_plan(rows, Path(args.plot), f"{model.name} on {args.nodes:,} nodes of {cluster.name}")
    if args.json:
        print_json(rows, command_meta(args), PLANS_KEY)
    else:
        _table(
            rows,
            f"{model.name} on {args.nodes:,} nodes of {cluster.name} (stack {stack.name}): "
            f"{len(result.predictions)} layouts fit of {result.considered} considered",
            [f"p10..p90 for the best {min(args.intervals_top, len(rows))} only"],
        )
    return 0


def emit_job(args: argparse.Namespace, pred: Prediction) -> list[Path]:
    """Write the job chain of ``pred`` into ``--emit-job`` (:mod:`fugaku_sim.sim.jobscript`).

    Raises:
        UserError: no run length, a policy the chain cannot run (spare nodes, shrinking), an
            elapsed time the resource group refuses or that holds no step.
    """
    from fugaku_sim.commands.campaign import resolve_settings
    from fugaku_sim.sim.goalseek import Sampling, campaign_point
    from fugaku_sim.sim.jobchain import campaign_chain, single_job
    from fugaku_sim.sim.jobscript import JobSettings, write_job

    steps = pred.job.run_steps()
    if steps is None:
        raise UserError("--emit-job: the job chain needs the run's length; pass --tokens or --steps")
    settings = resolve_settings(args)
    if settings.spare_nodes or settings.shrink_dp_min is not None:
        raise UserError("--emit-job: the job chain resumes by requeueing; it does not run spare "
                        "nodes or shrinking (campaign what-ifs): drop --spare-nodes/--shrink-dp-min")
    sched = pred.job.cluster.scheduler
    if sched.kind == "local":
        chain = single_job(steps, settings)
    else:
        sampling = Sampling(args.seeds, args.first_seed, hasattr(args, "elapse_h"),
                            args.shrink_step)
        point = campaign_point(pred, settings, sampling)
        chain = campaign_chain(point.plan, point.interval, point.settings, point.summary)
    given = {"group": args.group, "account": args.account, "partition": args.partition,
             "llio_volumes": args.llio_volumes, "llio": args.llio, "setup": args.setup}
    sched = sched.model_copy(update={k: v for k, v in given.items() if v is not None})
    # a model given as a file must be found from the job's folder too
    model_ref = str(Path(args.model).resolve()) if Path(args.model).is_file() else args.model
    job = JobSettings(model_ref, sched, args.train_data, args.train_out)
    return write_job(pred, Path(args.emit_job), job, chain)
