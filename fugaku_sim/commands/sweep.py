"""``fugaku-sim sweep``: vary one quantity of a job (nodes, link bandwidth, GEMM efficiency,
global batch, ...) and write the predictions as CSV plus a plot."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from fugaku_sim.commands.common import (
    add_job_arguments,
    command_meta,
    job_from_args,
    print_json,
)
from fugaku_sim.errors import UserError
from fugaku_sim.sim.sweep import VARIABLES, axis_label
from fugaku_sim.spec.record import LayoutRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--vary", required=True, choices=VARIABLES, help="the quantity to vary")
    parser.add_argument("--values", required=True, type=float, nargs="+", help="its values")
    parser.add_argument("--out", required=True, metavar="DIR", help="writes sweep-<vary>.csv/.png")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (under 'rows', with 'meta')")


def run(args: argparse.Namespace) -> int:
    from fugaku_sim.progress import Progress
    from fugaku_sim.sim.plots import plot_sweep
    from fugaku_sim.sim.sweep import csv_rows, sweep

    job = job_from_args(args)
    with Progress("sweep") as progress:
        rows = sweep(job, args.vary, list(args.values),
                     lambda done, total: progress.update(done, total, "values"))
    if all("error" in r for r in rows):
        raise UserError(f"--values: no valid variant ({rows[0]['error']})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header, cells = csv_rows(rows)
    with (out / f"sweep-{args.vary}.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(cells)
    label = axis_label(args.vary, job.cluster)
    title = f"{job.model.name} on {job.cluster.name}: varying the {label}"
    plot_sweep(rows, args.vary, label, out / f"sweep-{args.vary}.png", title)
    if args.json:
        record = LayoutRecord(job.layout, job.train).to_json()
        print_json(rows, command_meta(args, record=record), "rows")
    else:
        for r in rows:
            msg = r.get("error") or (
                f"step {r['step_time_s']:.3f} s, {r['tokens_per_s']:,.0f} "
                f"tokens/s, MFU {r['mfu']:.3f}"
            )
            print(f"{args.vary}={r['value']:g}: {msg}")
        print(f"wrote {out / f'sweep-{args.vary}.csv'} and {out / f'sweep-{args.vary}.png'}")
    return 0
