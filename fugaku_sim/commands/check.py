"""``fugaku-sim check``: is this layout valid for this model on this cluster, and what does it
need? Prints parameters (in all, and held by one rank of each pipeline stage: the sum of its
tensors' local sizes, to hold against a trainer's shard files), FLOPs, batch figures and
memory per node by pipeline stage."""

from __future__ import annotations

import argparse
from typing import Any

from fugaku_sim.commands.common import (
    add_job_arguments,
    command_meta,
    job_from_args,
    print_json,
)
from fugaku_sim.sim.allocation import resolve_allocation
from fugaku_sim.sim.flops import (
    megatron_flops_per_step,
    megatron_formulas_apply,
    megatron_parameter_count,
    model_flops_per_token,
    parameter_count,
)
from fugaku_sim.sim.memory import GiB, fits_memory, memory_by_stage, peak_memory_per_node
from fugaku_sim.spec.breakdown import MEMORY_KEYS
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.record import LayoutRecord
from fugaku_sim.tensors import parameters_by_stage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def derived_figures(job: Job) -> dict[str, Any]:
    """The figures ``check`` reports, as a JSON-ready mapping."""
    model, train, lay = job.model, job.train, job.layout
    recompute_any = bool(job.recompute_stages)
    closed_form = megatron_formulas_apply(model)  # Narayanan et al. count GPT layers only
    alloc = resolve_allocation(job)
    stages = memory_by_stage(job)
    peak = peak_memory_per_node(job, stages)
    return {
        "valid": True,
        "cluster": job.cluster.name,
        "model": model.name,
        "nodes": job.nodes,
        "ranks": lay.world,
        "processes_per_node": job.processes_per_node,
        "allocation": alloc.kind,
        "job_shape": "x".join(map(str, alloc.shape)),
        "tp": lay.tp,
        "pp": lay.pp,
        "dp": lay.dp,
        "schedule": lay.schedule,
        "micro_batch": train.micro_batch,
        "global_batch": train.global_batch,
        "global_batch_tokens": job.global_batch_tokens,
        "grad_accum": job.micro_batches,
        "recompute_stages": sorted(job.recompute_stages),
        "selective_recompute_stages": sorted(train.selective_stage_set(lay.pp)),
        "sequence_parallel": lay.sequence_parallel,
        "zero_stage": train.zero_stage,
        "parameters": parameter_count(model),
        "parameters_megatron_formula": (round(megatron_parameter_count(model))
                                        if closed_form else None),
        "parameters_per_rank_by_stage": parameters_by_stage(model, lay),
        "model_flops_per_token": model_flops_per_token(model),
        "model_flops_per_step": model_flops_per_token(model) * job.global_batch_tokens,
        "megatron_flops_per_step": (megatron_flops_per_step(
            model, train.global_batch, recompute=recompute_any) if closed_form else None),
        "steps": job.run_steps(),
        "memory_per_node_GiB": peak / GiB,
        "usable_memory_per_node_GiB": job.cluster.node.usable_mem_bytes / GiB,
        "fits_memory": fits_memory(job, peak),
        "memory_by_stage_GiB": [s.as_GiB() for s in stages],
    }


def _print_table(fig: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{fig['model']} on {fig['cluster']}: layout is valid", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    rows = [
        ("nodes x processes", f"{fig['nodes']:,} x {fig['processes_per_node']}"),
        ("allocation", f"{fig['job_shape']} ({fig['allocation']})"),
        ("tp x pp x dp", f"{fig['tp']} x {fig['pp']} x {fig['dp']} ({fig['schedule']})"),
        ("parameters", f"{fig['parameters'] / 1e9:,.3f} B"),
        ("  Megatron formula", "-" if fig["parameters_megatron_formula"] is None
         else f"{fig['parameters_megatron_formula'] / 1e9:,.3f} B"),
        ("model FLOPs per token", f"{fig['model_flops_per_token'] / 1e9:,.2f} GFLOP"),
        ("model FLOPs per step", f"{fig['model_flops_per_step'] / 1e15:,.2f} PFLOP"),
        ("global batch", f"{fig['global_batch']} seq = {fig['global_batch_tokens']:,} tokens"),
        ("micro-batch x grad accum", f"{fig['micro_batch']} x {fig['grad_accum']}"),
        ("recompute stages", ", ".join(map(str, fig["recompute_stages"])) or "none"),
        ("steps", f"{fig['steps']:,}" if fig["steps"] else "-"),
        ("memory per node", f"{fig['memory_per_node_GiB']:.2f} GiB of "
         f"{fig['usable_memory_per_node_GiB']:.1f} GiB usable"),
        ("fits memory", "yes" if fig["fits_memory"] else "[red]NO[/red]"),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    console.print(summary)
    mem = Table(title="parameters and memory (GiB) per rank by pipeline stage")
    for col in ("stage", "Mparam", *MEMORY_KEYS, "total", "m held", "recompute"):
        mem.add_column(col, justify="right")
    for s, params in zip(fig["memory_by_stage_GiB"], fig["parameters_per_rank_by_stage"]):
        mem.add_row(
            str(s["stage"]), f"{params / 1e6:.1f}",
            *(f"{s[k]:.2f}" for k in (*MEMORY_KEYS, "total")),
            str(s["micro_batches_in_flight"]), str(s["recompute"]),
        )
    console.print(mem)


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args)
    fig = derived_figures(job)
    if args.json:
        print_json(fig, command_meta(args, record=LayoutRecord(job.layout, job.train).to_json()))
    else:
        _print_table(fig)
    return 0
