"""``fugaku-sim predict``: simulate one training step of a layout and cost the whole run.

Prints the contract's JSON (``--json``) or a table; ``--trace FILE`` writes the simulated step
as Chrome trace-event JSON (open it in https://ui.perfetto.dev)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from fugaku_sim.commands.common import (
    add_interval_arguments,
    add_job_arguments,
    command_meta,
    job_from_args,
    print_json,
)
from fugaku_sim.errors import UserError
from fugaku_sim.io import check_output_path
from fugaku_sim.sim.predict import Mode
from fugaku_sim.spec.record import RECORD_KEYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument(
        "--mode",
        choices=get_args(Mode),
        default="fast",
        help="fast: one representative pipeline; detailed: every rank and link",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trace", metavar="FILE", help="write Chrome trace-event JSON of one step")
    add_interval_arguments(parser)


def _hours(h: float | None) -> str:
    return "-" if h is None else f"{h:,.0f}"


def print_prediction(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from fugaku_sim.sim.plan_rows import recompute_label

    console = Console()
    t = Table(
        title=f"{d['model']} on {d['nodes']:,} nodes of {d['cluster']} ({d['mode']} mode)",
        show_header=False,
    )
    t.add_column(style="bold")
    t.add_column(justify="right")
    rows = [
        ("tp x pp x dp", f"{d['tp']} x {d['pp']} x {d['dp']} ({d['schedule']}, {d['placement']})"),
        ("job shape", f"{d['job_shape']} ({d['allocation']})"),
        (
            "micro-batch x grad accum",
            f"{d['micro_batch']} x {d['grad_accum']} (global batch {d['global_batch']})",
        ),
        ("recompute", recompute_label(d)),
        ("sequence parallel / ZeRO", f"{'on' if d['sequence_parallel'] else 'off'} / "
                                     f"stage {d['zero_stage']}"),
        ("step time", f"{d['step_time_s']:.3f} s"),
        *_interval_rows(d),
        ("throughput", f"{d['tokens_per_s']:,.0f} tokens/s"),
        (
            "model TFLOP/s per node",
            f"{d['tflops_per_node']:.3f} (hardware {d['hw_tflops_per_node']:.3f})",
        ),
        ("MFU", f"{d['mfu']:.3f}"),
        (
            "memory per node",
            f"{d['memory_per_node_GiB']:.2f} GiB of {d['usable_memory_per_node_GiB']:.1f} usable",
        ),
        (f"  per rank (stage {d['memory_peak_stage']})", ", ".join(
            f"{k} {v:.2f}" for k, v in d["memory_per_rank_GiB"].items() if k != "total")),
        ("fits memory", "yes" if d["fits_memory"] else "[red]NO[/red]"),
    ]
    if d.get("time_to_train_days") is not None:
        rows += [
            ("steps", f"{d['steps']:,}"),
            (
                "time to train",
                f"{d['time_to_train_days']:.2f} days "
                f"({d['failure_overhead'] * 100:.2f}% for failures)",
            ),
            ("node-hours", _hours(d["node_hours"])),
            ("energy", f"{d['energy_MWh']:,.1f} MWh"),
            (
                "checkpoint every",
                f"{d['checkpoint_interval_s']:.0f} s (MTBF {d['system_mtbf_h']:.1f} h)",
            ),
        ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    b = Table(title=f"step time breakdown (critical stage {d['critical_stage']})")
    b.add_column("term")
    b.add_column("seconds", justify="right")
    b.add_column("share", justify="right")
    for k, v in d["breakdown_s"].items():
        b.add_row(k, f"{v:.4f}", f"{v / d['step_time_s'] * 100:.1f}%")
    b.add_row("[bold]step[/bold]", f"{d['step_time_s']:.4f}", "100.0%")
    console.print(b)


def _interval_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    iv = d.get("intervals")
    if not iv:
        return []
    step = iv["step_time_s"]
    rows = [("  p10 / p50 / p90", f"{step['p10']:.3f} / {step['p50']:.3f} / {step['p90']:.3f} s")]
    if iv.get("time_to_train_days"):
        t = iv["time_to_train_days"]
        rows.append(("time to train p10 / p50 / p90",
                     f"{t['p10']:.2f} / {t['p50']:.2f} / {t['p90']:.2f} days"))
    return rows


def interval_fields(pred: Any, setup: Any, args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``intervals`` object of a prediction (None when --no-intervals; fast mode only)."""
    from fugaku_sim.sim.intervals import predict_intervals

    if not args.intervals or pred.mode != "fast":
        return None
    if args.draws < 2:
        raise UserError(f"--draws: need at least 2, got {args.draws}")
    return predict_intervals(pred, setup, draws=args.draws).to_json()


def run(args: argparse.Namespace) -> int:
    from fugaku_sim.sim.predict import predict, prepare

    if args.trace:
        check_output_path(args.trace, f"--trace {args.trace}")
    job = job_from_args(args)
    setup = prepare(job)
    pred = predict(job, mode=args.mode, trace=bool(args.trace), setup=setup)
    fields = pred.to_json()
    fields["intervals"] = interval_fields(pred, setup, args)
    if args.trace:
        from fugaku_sim.sim.trace import write_trace

        write_trace(Path(args.trace), pred.result.trace, job.layout.pp, fields)
    if args.json:
        record = {k: fields[k] for k in RECORD_KEYS if k in fields}
        print_json(fields, command_meta(args, record=record))
    else:
        print_prediction(fields)
    return 0
