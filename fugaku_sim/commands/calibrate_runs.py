"""``fugaku-sim calibrate --from-runs``: the verb's side of fitting a stack to measured runs
(reading the options, printing the tables, writing the stack). The fit itself is
:mod:`fugaku_sim.calibrate.fromruns`."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

import numpy as np

from fugaku_sim.calibrate.fromruns import FromRuns
from fugaku_sim.errors import UserError
from fugaku_sim.meta import Source


def run_from_runs(args: argparse.Namespace) -> int:
    from fugaku_sim.calibrate.fromruns import (
        fitted_stack,
        parse_free,
        read_inputs,
        run_fit,
        stack_path,
        stack_yaml,
    )
    from fugaku_sim.calibrate.record import load_occupancy
    from fugaku_sim.calibrate.stackfit import parse_condition_factor
    from fugaku_sim.io import write_text
    from fugaku_sim.progress import Progress
    from fugaku_sim.spec import load_cluster
    from fugaku_sim.spec.load import resolve_cluster_path
    from fugaku_sim.spec.stack import load_stack

    if not args.cluster:
        raise UserError("--cluster: give the hardware profile the runs ran on")
    if args.out is None:
        raise UserError("--out: give the fitted stack a name (clusters/stacks/NAME.yaml)")
    out = stack_path(str(args.out))
    cluster = load_cluster(args.cluster)
    base = load_stack(args.stack_base)
    free = parse_free(args.free) if args.free else None
    factors = [f for text in args.condition_factor for f in parse_condition_factor(text)]
    qualities = [q.strip() for q in args.time_quality.split(",") if q.strip()]
    fit_only = [i.strip() for i in args.fit_only.split(",")] if args.fit_only else None
    inputs = read_inputs(args.from_runs, args.cluster)
    occupancy = load_occupancy(resolve_cluster_path(args.cluster))
    with Progress("calibrate --from-runs") as progress:
        steps = itertools.count(1)
        result = run_fit(inputs, cluster, base, free, factors, qualities,
                         args.include_excluded, fit_only,
                         progress=lambda what: progress.update(next(steps), None, "fit", what),
                         occupancy=occupancy)
    name = out.stem
    # the arguments as given (a list, so the fit can be replayed exactly)
    command = sys.argv[1:] if sys.argv[1:2] == ["calibrate"] else []
    stack = fitted_stack(result, base, name, args.description or
                         f"fitted to {len(result.problem.rows)} runs on {cluster.name}", command)
    write_text(out, stack_yaml(stack, result, args.cluster))
    doc = fit_json(result, stack)
    if args.json:
        from fugaku_sim.commands.common import command_meta, print_json

        print_json(doc | {"stack_file": str(out)}, command_meta(args, sources=fit_sources(args)))
    else:
        print_fit(doc)
        print(f"wrote {out}")
    return 0


def fit_sources(args: argparse.Namespace) -> list[Source]:
    """The files a fit depends on, for its ``meta``: the base stack, each runs file and each
    trainer run's summary."""
    from fugaku_sim.spec.stack import DEFAULT_STACK, resolve_stack_path

    base = args.stack_base or DEFAULT_STACK
    sources: list[Source] = [("stack", base, resolve_stack_path(base))]
    for path in args.from_runs:
        file = path if path.is_file() else path / "summary.json"
        sources.append(("runs", str(path), file))
    return sources


def fit_json(result: FromRuns, stack: Any) -> dict[str, Any]:
    """The fit as JSON: summary, parameters with 90% intervals, one row per run."""
    from fugaku_sim.calibrate.stackfit import intervals90

    m = result.measured()
    held = set(result.held_out)
    rows = []
    for i, row in enumerate(result.problem.rows):
        c = result.check
        rows.append({
            "id": row.run.id, "measured_s": float(m[i]),
            "fitted_s": float(result.fit.predicted_s[i]),
            "residual": float(np.log(result.fit.predicted_s[i] / m[i])),
            "out_of_sample": i in held,
            "predicted_s": float(c.predicted_s[i]), "error": float(c.errors[i]),
            "p10_s": float(c.p10_s[i]), "p90_s": float(c.p90_s[i]),
            "inside_p10_p90": bool(c.p10_s[i] <= m[i] <= c.p90_s[i]),
        })
    capped = set(result.fit.capped)
    params = {k: {"value": v, "low90": lo, "high90": hi, "one_sided": k in capped}
              for k, (v, lo, hi) in intervals90(result.problem, result.fit).items()}
    return {"stack": stack.name, "summary": result.summary(), "parameters": params,
            "runs": rows, "left_out": result.left_out}


def print_fit(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 130)
    s = doc["summary"]
    loo = s["mode"] == "leave-one-out"
    t = Table(title=f"{doc['stack']}: measured vs fitted step time "
                    f"({'leave-one-out' if loo else 'held-out rows marked *'})")
    for col in ("run", "measured s", "fitted s", "residual", "predicted s", "error",
                "p10 .. p90 s", "in"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for r in doc["runs"]:
        mark = "*" if r["out_of_sample"] and not loo else ""
        t.add_row(r["id"] + mark, f"{r['measured_s']:,.2f}", f"{r['fitted_s']:,.2f}",
                  f"{r['residual']:+.3f}", f"{r['predicted_s']:,.2f}", f"{r['error']:+.1%}",
                  f"{r['p10_s']:,.1f} .. {r['p90_s']:,.1f}",
                  "yes" if r["inside_p10_p90"] else "[red]no[/red]")
    console.print(t)
    p = Table(title="fitted parameters (90% intervals; @ = a condition's factor)")
    for col in ("parameter", "value", "low", "high"):
        p.add_column(col, justify="left" if col == "parameter" else "right")
    for k, v in doc["parameters"].items():
        p.add_row(k + (" (one-sided)" if v["one_sided"] else ""), f"{v['value']:.4g}",
                  f"{v['low90']:.4g}", f"{v['high90']:.4g}")
    console.print(p)
    if any(v["one_sided"] for v in doc["parameters"].values()):
        console.print("one-sided: an efficiency at its cap (every GEMM of the runs reaches "
                      "the peak there, and 1% more changes none of them): the runs say only "
                      "that it is at least its low end")
    what = "leave-one-out" if loo else "held-out runs"
    console.print(
        f"{what} ({s['runs_checked']} runs, {s['parameters']} parameters): median |error| "
        f"{s['median_abs_error']:.1%}, worst {s['worst_abs_error']:.1%} ({s['worst_run']}); "
        f"p10-p90 coverage {s['coverage_p10_p90']:.0%}; model error (sigma of ln) "
        f"{s['log_residual_sigma']:.3f}")
    if doc["left_out"]:
        console.print(f"{len(doc['left_out'])} rows left out:")
        for k, why in doc["left_out"].items():
            console.print(f"  {k}: {why}", highlight=False)
