"""``fugaku-sim plan``: rank every valid layout of a model on a node count.

Enumerates (tp, pp, dp, micro-batch, placement, schedule, sequence parallelism,
recomputation, ZeRO stage; :mod:`fugaku_sim.sim.plan`), drops layouts that do not fit memory,
predicts the rest and sorts them by throughput. The table shows a column for every choice
that differs between the layouts it lists, and why the first wins. ``--emit-job DIR`` writes the job
script and rank map of the best one; ``--plot FILE`` a chart of every layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fugaku_sim.commands.common import (
    add_model_arguments,
    add_train_arguments,
    command_meta,
    print_json,
    resolve_specs,
    stack_from_args,
)
from fugaku_sim.errors import UserError
from fugaku_sim.spec.record import PLANS_KEY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_train_arguments(parser)
    parser.add_argument("--nodes", type=int, required=True, help="node count to plan for")
    parser.add_argument(
        "--processes-per-node", type=int, metavar="K",
        help="MPI processes per node (default: the cluster profile's)",
    )
    parser.add_argument("--top", type=int, help="show only the best K layouts")
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
                        help="print JSON: the layouts under 'plans', best first, and 'meta'")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG of every layout")
    parser.add_argument("--emit-job", metavar="DIR", help="write job script + rank map of the best")
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


def run(args: argparse.Namespace) -> int:
    from fugaku_sim.progress import Progress
    from fugaku_sim.sim.intervals import predict_intervals
    from fugaku_sim.sim.plan import no_layout_message, plan_layouts
    from fugaku_sim.spec import load_cluster

    if args.nodes <= 0:
        raise UserError(f"--nodes: must be positive, got {args.nodes}")
    cluster = load_cluster(args.cluster)
    if args.processes_per_node is not None:
        if args.processes_per_node <= 0:
            raise UserError(f"--processes-per-node: must be positive, got {args.processes_per_node}")
        node = cluster.node.model_copy(update={"processes_per_node": args.processes_per_node})
        cluster = cluster.model_copy(update={"node": node})
    args.tp = args.pp = args.dp = None  # the plan chooses the layout
    model, train, _layout = resolve_specs(args)
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
    if args.intervals_top < 0:
        raise UserError(f"--intervals-top: must be 0 or more, got {args.intervals_top}")
    for i, (pred, row) in enumerate(zip(best, rows)):
        row["intervals"] = (predict_intervals(pred, result.setup_of(pred)).to_json()
                            if i < args.intervals_top else None)
    if args.plot:
        from fugaku_sim.sim.plots import plot_plan

        plot_plan(rows, Path(args.plot), f"{model.name} on {args.nodes:,} nodes of {cluster.name}")
    if args.emit_job:
        from fugaku_sim.sim.jobscript import write_job
        from fugaku_sim.sim.plan import trainer_runnable

        rank, chosen, why = trainer_runnable(result.predictions)
        if chosen is None:
            raise UserError(f"--emit-job: no layout of the plan runs in this tool's trainer "
                            f"(the best: {why})")
        if rank > 1:
            print(f"fugaku-sim plan: the job script runs layout #{rank}, the best one this "
                  f"tool's trainer runs (#1: {why})", file=sys.stderr)
        write_job(chosen, Path(args.emit_job), args.model)
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
