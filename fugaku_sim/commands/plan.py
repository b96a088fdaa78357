"""``fugaku-sim plan``: rank every valid layout of a model on a node count.

Enumerates (tp, pp, dp, micro-batch, recomputation, placement), drops layouts that do not fit
memory, predicts the rest and sorts them by throughput. ``--emit-job DIR`` writes the job
script and rank map of the best one; ``--plot FILE`` a chart of every layout."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fugaku_sim.commands.common import (
    add_model_arguments,
    add_train_arguments,
    print_json,
    resolve_specs,
    stack_from_args,
)
from fugaku_sim.errors import UserError


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
    parser.add_argument("--json", action="store_true", help="print a JSON list, best first")
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


def _table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in (
        "#",
        "tp",
        "pp",
        "dp",
        "mb",
        "recompute",
        "placement",
        "shape",
        "step s",
        "p10..p90 s",
        "tokens/s",
        "MFU",
        "GiB",
        "days",
        "node-hours",
    ):
        t.add_column(col, justify="right")
    for i, r in enumerate(rows, 1):
        rec = ",".join(map(str, r["recompute_stages"])) or "none"
        days = r.get("time_to_train_days")
        t.add_row(
            str(i),
            str(r["tp"]),
            str(r["pp"]),
            str(r["dp"]),
            str(r["micro_batch"]),
            rec,
            r["placement"],
            r["job_shape"],
            f"{r['step_time_s']:.3f}",
            _spread(r),
            f"{r['tokens_per_s']:,.0f}",
            f"{r['mfu']:.3f}",
            f"{r['memory_per_node_GiB']:.1f}",
            "-" if days is None else f"{days:.2f}",
            "-" if r.get("node_hours") is None else f"{r['node_hours']:,.0f}",
        )
    console = Console()
    console.width = max(console.width, 165)  # 15 columns: do not squeeze them in 80
    console.print(t)


def run(args: argparse.Namespace) -> int:
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
    result = plan_layouts(cluster, model, train, args.nodes, interleaved=args.interleaved,
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

        write_job(result.predictions[0], Path(args.emit_job), args.model)
    if args.json:
        print_json(rows)
    else:
        _table(
            rows,
            f"{model.name} on {args.nodes:,} nodes of {cluster.name} (stack {stack.name}): "
            f"{len(result.predictions)} layouts fit of {result.considered} considered; "
            f"p10..p90 for the best {min(args.intervals_top, len(rows))} only",
        )
    return 0
