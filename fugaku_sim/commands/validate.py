"""``fugaku-sim validate``: run (or read) short real training runs, predict each with the
simulator on a cluster profile, and show predicted vs measured step time side by side.

Two ways to use it:

- ``fugaku-sim validate --cluster clusters/local-calibrated.yaml [--runs SET|FILE]
  [--out results/compare]`` trains every run of the set with ``--launcher`` (one after
  another, synthetic tokens, fresh directories under ``<out>/runs``; ``--repeats`` passes over
  the set, each run's step the mean of its passes), then compares.
- ``fugaku-sim validate --cluster C --from-metrics DIR [DIR ...] --out results/compare``
  trains nothing: it reads finished runs (each a trainer ``--out`` directory, or its
  ``summary.json``, which names the model, train settings and layout) and compares them.
  With one directory this is the workflow's compare rule: predicted vs measured for that run.

Writes ``compare.json``, ``compare.csv``, ``compare.md`` and ``compare.png`` under ``--out``
and prints the table. Exit status 0 whatever the errors; ``--check-targets`` makes it exit 1
when the median |error| > 10%, the worst > 25%, or the fastest layouts disagree.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from fugaku_sim.calibrate.compare import STATISTICS
from fugaku_sim.calibrate.runs import RUN_SETS
from fugaku_sim.commands.common import (
    add_launch_arguments,
    add_stack_argument,
    command_meta,
    count,
    positive_int,
    print_json,
    stack_from_args,
)
from fugaku_sim.sim.predict import Mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", default="local-calibrated",
                        help="calibrated profile (preset name or YAML path)")
    add_stack_argument(parser)
    parser.add_argument("--runs", default="default",
                        help=f"run set: {', '.join(RUN_SETS)}, or a YAML file with a 'runs:' "
                             "list")
    parser.add_argument("--from-metrics", nargs="+", type=Path, metavar="DIR",
                        help="compare these finished runs instead of training")
    parser.add_argument("--out", type=Path, default=Path("results/compare"),
                        help="output directory (default results/compare)")
    parser.add_argument("--data", type=Path,
                        help="data directory for the runs (default: synthetic, <out>/data)")
    parser.add_argument("--warmup", type=count, default=None,
                        help="steps left out of the timing of --from-metrics runs (default 2)")
    parser.add_argument("--statistic", choices=STATISTICS, default="median",
                        help="measured step time: this statistic of the timed steps (p10: "
                             "the 10th percentile, a run's undisturbed steps on a shared "
                             "machine; the summary gives the errors against it whichever "
                             "you choose)")
    parser.add_argument("--mode", choices=get_args(Mode), default="fast",
                        help="simulator mode")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="train every run this many times, in passes over the whole set "
                             "(default 2): the measured step is the mean of the passes, and "
                             "their range is shown (a shared machine's speed holds one level "
                             "for seconds to minutes)")
    add_launch_arguments(parser, 900.0, "per run")
    parser.add_argument("--json", action="store_true",
                        help="print the summary and 'meta' as JSON (the table goes to stderr)")
    parser.add_argument("--check-targets", action="store_true",
                        help="exit 1 unless the error targets are met")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fugaku_sim.calibrate.compare import compare_run, read_measured, summarize_rows
    from fugaku_sim.calibrate.execute import execute_runs, warmup_of
    from fugaku_sim.calibrate.launch import parse_launcher
    from fugaku_sim.calibrate.provenance import load_average, provenance
    from fugaku_sim.calibrate.record import load_occupancy
    from fugaku_sim.calibrate.report import TARGETS, rich_table, write_outputs
    from fugaku_sim.calibrate.runs import load_runs
    from fugaku_sim.io import check_output_path
    from fugaku_sim.progress import Progress
    from fugaku_sim.spec import load_cluster
    from fugaku_sim.spec.load import resolve_cluster_path

    check_output_path(args.out, f"--out {args.out}", folder=True)  # before the runs
    cluster = load_cluster(args.cluster)
    stack = stack_from_args(args)
    cluster_file = resolve_cluster_path(args.cluster)
    occupancy = load_occupancy(cluster_file)
    console = Console(stderr=True)
    # meta["cluster"], meta["stack"]: the profile and the stack compared against (file,
    # sha256, when and where measured; --stack-scale factors in the arguments); the
    # provenance: this machine and this run
    meta = {**command_meta(args), "mode": args.mode, "occupancy": occupancy, **provenance()}
    if args.from_metrics:
        dirs = list(args.from_metrics)
        warm = {d: args.warmup if args.warmup is not None else warmup_of(d, 2) for d in dirs}
    else:
        runs = load_runs(args.runs)
        launcher = parse_launcher(args.launcher)
        meta["launcher"] = launcher.describe()
        meta["runs"] = args.runs
        meta["allocator"] = args.allocator
        meta["repeats"] = args.repeats
        total = len(runs) * args.repeats
        with Progress("validate") as progress:
            done = iter(range(total))
            dirs = execute_runs(runs, launcher, args.out / "runs", args.data or args.out / "data",
                                args.timeout,
                                lambda text: progress.update(next(done), total, "runs", text),
                                args.allocator, args.attempts, args.repeats)
            progress.update(total, total, "runs", "trained")
        warm = {d: r.warmup_steps for d, r in zip(dirs, runs)}
    meta["load_average_end"] = load_average()
    meta["statistic"] = args.statistic
    rows = [compare_run(cluster, read_measured(d, warm[d], args.statistic), args.mode, occupancy,
                        stack) for d in dirs]
    summary = summarize_rows(rows)
    summary["statistic"] = args.statistic
    summary["targets"] = TARGETS
    summary["targets_met"] = bool(
        summary["median_abs_error"] <= TARGETS["median_abs_error"]
        and summary["worst_abs_error"] <= TARGETS["worst_abs_error"]
        and summary["fastest_agreed"] is not False
    )
    paths = write_outputs(rows, summary, meta, args.out)
    # with --json, stdout is the JSON alone: the table goes to stderr (a log)
    table_console = console if args.json else Console()
    table_console.print(rich_table(rows, summary, f"predicted vs measured on {cluster.name}"))
    if args.json:
        print_json(summary, meta)
    console.log("wrote " + ", ".join(str(p) for p in paths))
    return 1 if args.check_targets and not summary["targets_met"] else 0
