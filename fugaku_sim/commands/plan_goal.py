"""``fugaku-sim plan --deadline/--budget``: the goal-seek half of the plan verb.

Builds the ladder of node counts, runs :func:`fugaku_sim.sim.goalseek.seek` with a progress
bar on a terminal's stderr, then prints the table (or ``--json``: one object), draws
``--plot`` and writes ``--emit-job`` for the choice. A goal no node count meets is one line,
exit 2, naming the best reachable figure; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fugaku_sim.commands.common import command_meta, print_json, stack_from_args
from fugaku_sim.errors import UserError
from fugaku_sim.sim.goalseek import (
    GOAL_QUANTILE,
    LADDER_RATIO,
    Goal,
    GoalResult,
    Sampling,
    allowed_node_counts,
    ladder,
    nodes_floor,
    seek,
)
from fugaku_sim.spec import ClusterSpec, ModelSpec, TrainSpec


def node_ladder(args: argparse.Namespace, cluster: ClusterSpec, model: ModelSpec,
                train: TrainSpec) -> tuple[list[int], int, int]:
    """(ladder, lowest, highest) node counts for the options.

    Raises:
        UserError: an empty range, or no allowed node count in it.
    """
    if train.tokens is None and train.steps is None:
        raise UserError("train.tokens: a goal-seek needs the run's length; pass --tokens or --steps")
    lo = args.nodes_min or nodes_floor(cluster, model, train, args.deadline)
    hi = args.nodes_max or cluster.allocation.max_nodes
    if lo > hi:
        raise UserError(f"--nodes-min: {lo:,} is above --nodes-max ({hi:,})"
                        if args.nodes_min else f"--nodes-max: {hi:,} is below the fewest nodes "
                        f"worth trying ({lo:,}: model states in memory, or 100% of peak within "
                        "the deadline)")
    counts = allowed_node_counts(cluster, model, train, lo, hi)
    if not counts:
        raise UserError(f"--nodes-min/--nodes-max: no node count from {lo:,} to {hi:,} splits "
                        f"{model.name} (tp | heads, pp | layers, dp | global batch "
                        f"{train.global_batch}) in a resource group of {cluster.name}")
    return ladder(counts, lo, hi), lo, hi


def _bar(total: int) -> Any:
    """A rich bar on a terminal's stderr; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(stderr=True), transient=True)


def _fmt(value: float | None, digits: int) -> str:
    return "never" if value is None else f"{value:,.{digits}f}"


def print_goal(doc: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("nodes", "tp", "pp", "dp", "mb", "step s", "days p10", "p50", "p90",
                "node-h p50", "p90", "jobs p50", "front", "meets"):
        t.add_column(col, justify="right")
    chosen = doc["choice"]["nodes"]
    for p in doc["points"]:
        days, hours = p["wall_days"], p["node_hours"]
        style = "bold green" if p["nodes"] == chosen else None
        t.add_row(f"{p['allocated_nodes']:,}", str(p["tp"]), str(p["pp"]), str(p["dp"]),
                  str(p["micro_batch"]), f"{p['step_time_s']:.2f}",
                  *(_fmt(days[k], 1) for k in ("p10", "p50", "p90")),
                  *(_fmt(hours[k], 0) for k in ("p50", "p90")), _fmt(p["jobs"]["p50"], 0),
                  "*" if p["pareto"] else "", "yes" if p["meets_goal"] else "", style=style)
    console = Console()
    console.width = max(console.width, 140)
    console.print(t)
    for skip in doc["skipped"]:
        console.print(f"skipped {skip['nodes']:,} nodes: {skip['reason']}")
    c = doc["choice"]
    console.print(f"choice: {c['allocated_nodes']:,} nodes (tp {c['tp']} pp {c['pp']} dp "
                  f"{c['dp']}), {GOAL_QUANTILE} {c['wall_days'][GOAL_QUANTILE]:.1f} days, "
                  f"{c['node_hours'][GOAL_QUANTILE]:,.0f} node-hours")
    cheapest = doc["cheapest_meeting_goal_nodes"]
    if cheapest is not None and cheapest != c["nodes"]:
        row = next(p for p in doc["points"] if p["nodes"] == cheapest)
        console.print(f"fewest node-hours meeting the goal: {row['allocated_nodes']:,} nodes, "
                      f"{GOAL_QUANTILE} {row['wall_days'][GOAL_QUANTILE]:.1f} days, "
                      f"{row['node_hours'][GOAL_QUANTILE]:,.0f} node-hours")


def run_goal(args: argparse.Namespace, cluster: ClusterSpec, model: ModelSpec,
             train: TrainSpec) -> int:
    from fugaku_sim.commands.campaign import resolve_settings

    settings = resolve_settings(args)
    stack = stack_from_args(args)
    counts, lo, hi = node_ladder(args, cluster, model, train)
    goal = Goal(args.deadline, args.budget)
    sampling = Sampling(args.seeds, args.first_seed, hasattr(args, "elapse_h"), args.shrink_step)
    bar = _bar(len(counts))
    if bar is None:
        result = seek(cluster, model, train, settings, goal, counts, sampling,
                      engine=args.engine, stack=stack)
    else:
        with bar:
            task = bar.add_task("node counts", total=len(counts))
            result = seek(cluster, model, train, settings, goal, counts, sampling,
                          progress=lambda nodes, _: bar.update(task, advance=1,
                                                               description=f"{nodes:,} nodes"),
                          engine=args.engine, stack=stack)
    choice = result.choice()
    doc = goal_json(args, cluster, model, train, result, (lo, hi))
    if args.emit_job:
        from fugaku_sim.commands.plan import emit_job
        from fugaku_sim.sim.plan import trainer_runnable

        _, runnable, why = trainer_runnable([choice.prediction])
        if runnable is None:
            raise UserError(f"--emit-job: the choice is a layout this tool's trainer does not "
                            f"run ({why}); goal-seek with --engine train")
        emit_job(args, runnable)
    title = (f"{model.name} on {cluster.name}: {len(result.points)} node counts from {lo:,} to "
             f"{hi:,}, {args.seeds} campaigns each")
    if args.plot:
        from fugaku_sim.sim.goalseek_plots import plot_goal

        plot_goal(result, choice, Path(args.plot), title)
    if args.json:
        print_json(doc, command_meta(args))
    else:
        print_goal(doc, title)
    return 0


def goal_json(args: argparse.Namespace, cluster: ClusterSpec, model: ModelSpec, train: TrainSpec,
              result: GoalResult, span: tuple[int, int]) -> dict[str, Any]:
    """The goal-seek's JSON object: the run, the ladder, then the result's fields."""
    from fugaku_sim.spec.figures import run_steps

    choice = result.choice()
    return {
        "cluster": cluster.name, "model": model.name, "tokens": train.tokens,
        "steps": run_steps(train, model), "global_batch": train.global_batch,
        "ladder": {"nodes_min": span[0], "nodes_max": span[1], "ratio": LADDER_RATIO,
                   "rule": "allowed node counts nearest to nodes_min x ratio^k, with the "
                           "smallest and largest"},
        "seeds": args.seeds, "first_seed": args.first_seed,
        **result.to_json(choice),
    }
