"""``fugaku-sim sensitivity``: which uncertain input moves the prediction most.

Every figure the cluster profile only assumes (its ``assumed:`` section) is moved to the low
and to the high end of its range, every fitted parameter of the software stack to the ends
of its 90% interval, and the stack's model error to its 5% and 95% points, one at a time; the
job is simulated each time. The inputs are ranked by how far the time to train (the step
time when the run has no length) moves: the top of the table is what to measure first, and
its last column says with what. ``--json`` prints the rows; ``--plot`` draws a tornado chart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fugaku_sim.commands.common import (
    add_job_arguments,
    command_meta,
    job_from_args,
    print_json,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--top", type=int, help="show only the K inputs that move it most")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", metavar="FILE", help="write a tornado chart (PNG)")


def _label(row: dict[str, Any]) -> str:
    source = row["input"].partition(":")[0]
    return f"{row['label']} ({source}, {row['low']:.3g} .. {row['high']:.3g})"


def sensitivity_doc(job: Any) -> dict[str, Any]:
    """The verb's JSON object: the job, its central answer, the ranked inputs."""
    from fugaku_sim.sim.intervals import responses, sensitivity
    from fugaku_sim.sim.predict import predict, prepare

    setup = prepare(job)
    pred = predict(job, setup=setup)
    rows = sensitivity(pred, responses(pred, setup))
    central = pred.to_json()
    return {"cluster": central["cluster"], "model": central["model"],
            "stack": central["stack"], "nodes": job.nodes, "tp": job.layout.tp,
            "pp": job.layout.pp, "dp": job.layout.dp,
            "step_time_s": pred.step_time_s,
            "time_to_train_days": central["time_to_train_days"],
            "ranked_by": "time_to_train" if central["time_to_train_days"] else "step_time",
            "inputs": [r.to_json() for r in rows]}


def _print(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    by_train = doc["ranked_by"] == "time_to_train"
    t = Table(title=f"{doc['model']} on {doc['nodes']:,} nodes of {doc['cluster']} "
                    f"(stack {doc['stack']['name']}): what moves the "
                    f"{'time to train' if by_train else 'step time'}")
    for col in ("#", "input", "range", "step s (low / high)",
                "days (low / high)" if by_train else "", "swing", "measure it with"):
        if col:
            t.add_column(col, justify="left" if col in ("input", "measure it with") else "right")
    for i, r in enumerate(doc["inputs"], 1):
        step = r["step_time_s"]
        cells = [str(i), f"{r['label']} ({r['input'].partition(':')[0]})",
                 f"{r['low']:.3g} .. {r['high']:.3g}",
                 f"{step['at_low']:.3f} / {step['at_high']:.3f}"]
        if by_train:
            d = r["time_to_train_days"]
            cells.append(f"{d['at_low']:.2f} / {d['at_high']:.2f}")
        swing = r["swing_time_to_train"] if by_train else r["swing_step_time"]
        cells += [f"{swing:.1%}", r["measure"]]
        t.add_row(*cells)
    console = Console()
    console.width = max(console.width, 160)
    console.print(t)
    central = (f"{doc['time_to_train_days']:.2f} days" if by_train
               else f"{doc['step_time_s']:.3f} s")
    console.print(f"central: step {doc['step_time_s']:.3f} s; {central}")


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    doc = sensitivity_doc(job)
    if args.top:
        doc["inputs"] = doc["inputs"][: args.top]
    if args.plot:
        from fugaku_sim.sim.plots import plot_tornado

        by_train = doc["ranked_by"] == "time_to_train"
        key = "time_to_train_days" if by_train else "step_time_s"
        rows = [{"label": _label(r), "at_low": r[key]["at_low"],
                 "at_high": r[key]["at_high"]} for r in doc["inputs"]]
        central = doc["time_to_train_days"] if by_train else doc["step_time_s"]
        plot_tornado(rows, Path(args.plot),
                     f"{doc['model']} on {doc['nodes']:,} nodes of {doc['cluster']}, stack "
                     f"{doc['stack']['name']}: each input at the ends of its range",
                     central, "time to train (days)" if by_train else "step time (s)")
    if args.json:
        print_json(doc, command_meta(args))
    else:
        _print(doc)
    return 0
