"""``fugaku-sim runs``: check runs files, and import measured runs into one.

    fugaku-sim runs check clusters/runs/*.csv [--json]   # {"files": {path: counts}, "meta"}
    fugaku-sim runs megatron train.log [...] --cluster dgx-a100 --processes-per-node 8 \\
        [--warmup 2] [--clock-ghz F] [--condition pytorch=2.1 ...] [--out runs.csv]
    fugaku-sim runs trainer results/train [...] --cluster local [--out runs.csv]

``check`` validates every row (format and the spec's rules) and builds the simulator's job of
every row marked representable; a bad row is one line naming file, line and column (exit 2).
The importers write a runs file (``--out``, atomically) or print it. The format is described
in :mod:`fugaku_sim.calibrate.measured` and ``clusters/runs/README.md``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from fugaku_sim.commands.common import count, positive_int, positive_number
from fugaku_sim.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    check = sub.add_parser("check", help="validate runs files and build each representable job",
                           description="validate runs files and build each representable job")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true",
                       help="print the counts by file as JSON (under 'files', with 'meta')")
    check.set_defaults(_action=_run_check)
    for name, what, help_text in (
        ("megatron", "LOG", "import Megatron-LM / Megatron-DeepSpeed training logs"),
        ("trainer", "DIR", "import finished runs of `fugaku-sim train` (their --out folders)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("inputs", nargs="+", type=Path, metavar=what)
        p.add_argument("--cluster", required=True,
                       help="cluster profile the runs ran on (preset name or YAML path)")
        p.add_argument("--warmup", type=count, default=None,
                       help="steps left out of the timing (default 2; for trainer runs, the "
                            "warm-up recorded in run.json)")
        p.add_argument("--clock-ghz", type=positive_number, default=None,
                       help="core clock of the runs")
        p.add_argument("--condition", action="append", default=[], metavar="KEY=VALUE",
                       help="a condition column (cond_KEY) for every imported row; repeatable")
        p.add_argument("--out", type=Path, help="runs file to write (default: print it)")
        if name == "megatron":
            p.add_argument("--processes-per-node", type=positive_int, required=True,
                           help="ranks per node (GPUs per node; MPI ranks per A64FX node)")
        p.set_defaults(_action=_run_import, _importer=name)


def run(args: argparse.Namespace) -> int:
    return int(args._action(args))


def file_counts(path: Path) -> dict[str, Any]:
    """Rows, rows with a time, representable rows (and of those, with a time) of a runs file,
    after building the job of every representable row.

    Raises:
        UserError: a malformed row (file, line, column) or a representable row whose job the
            spec rejects (file and run id).
    """
    from fugaku_sim.calibrate.measured import job_of, read_runs

    runs = read_runs(path)
    for run in runs:
        if run.representable:
            try:
                job_of(run)
            except UserError as exc:
                raise UserError(f"{path}: run {run.id}: {exc}") from None
    timed = [r for r in runs if r.step_time_s is not None]
    return {
        "rows": len(runs),
        "with_time": len(timed),
        "representable": sum(r.representable for r in runs),
        "representable_with_time": sum(r.representable for r in timed),
        "duplicates": sum(r.duplicate_of is not None for r in runs),
        "fit_excluded": sum(r.fit_exclude is not None for r in runs),
        "time_quality": dict(Counter(r.time_quality for r in timed)),
    }


def _run_check(args: argparse.Namespace) -> int:
    counts = {str(path): file_counts(path) for path in args.files}
    if args.json:
        from fugaku_sim.commands.common import command_meta, print_json

        files = [("runs", str(path), path) for path in args.files]
        print_json({"files": counts}, command_meta(args, sources=files))
        return 0
    for name, c in counts.items():
        quality = ", ".join(f"{k} {v}" for k, v in sorted(c["time_quality"].items()))
        print(f"{name}: {c['rows']} rows, {c['with_time']} with a time ({quality}), "
              f"{c['representable']} representable ({c['representable_with_time']} with a time), "
              f"{c['duplicates']} duplicates, {c['fit_excluded']} left out of stack fits; "
              "every representable row builds a job")
    return 0


def parse_conditions(items: list[str]) -> dict[str, str]:
    """``["pytorch=1.10", "allocator=tcmalloc"]`` -> ``{"pytorch": "1.10", ...}``.

    Raises:
        UserError: an item without ``=`` or with an empty key or value.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"--condition: {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _run_import(args: argparse.Namespace) -> int:
    from fugaku_sim.calibrate.measured import format_runs, parse_runs, write_runs
    from fugaku_sim.io import check_output_path

    if args.out is not None:
        check_output_path(args.out, f"--out {args.out}")
    conditions = parse_conditions(args.condition)
    common = {"cluster": args.cluster, "clock_GHz": args.clock_ghz, "conditions": conditions}
    if args._importer == "megatron":
        from fugaku_sim.calibrate.megatron_log import run_from_megatron_log

        runs = [run_from_megatron_log(p, processes_per_node=args.processes_per_node,
                                      warmup_steps=2 if args.warmup is None else args.warmup,
                                      **common) for p in args.inputs]
    else:
        from fugaku_sim.calibrate.trainer_log import run_from_trainer

        runs = [run_from_trainer(p, warmup_steps=args.warmup, **common) for p in args.inputs]
    text = format_runs(runs)
    parse_runs(text, args.out or Path("<output>"))  # the written file must read back
    if args.out is None:
        print(text, end="")
    else:
        write_runs(args.out, runs)
        print(f"wrote {args.out} ({len(runs)} runs)")
    return 0
