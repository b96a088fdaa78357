"""``fugaku-sim calibrate``: measure this machine with MPI microbenchmarks and write a
calibrated cluster profile (YAML) with its provenance and raw measurements; or, with
``--from-runs``, fit a software stack to measured runs.

    fugaku-sim calibrate --from-runs clusters/runs/fugaku-deepspeed-2023.csv --cluster fugaku \
        --out deepspeedfugaku-2023 [--free P,P,...] [--condition-factor NAME=VALUE:P,...]
        [--fit-only ID,ID,...] [--include-excluded] [--json]

fits the stack's free parameters to the runs (:mod:`fugaku_sim.calibrate.fromruns`), prints
each run measured / fitted / residual with its leave-one-out prediction, each parameter with
its 90% interval and the leave-one-out summary, and writes ``clusters/stacks/<NAME>.yaml``.

Run it as an ordinary command (not under mpiexec): it launches each benchmark suite itself
with ``--launcher`` (default: the venv's ``mpiexec -n {ranks}``; inside a Slurm allocation
``--launcher "srun --mpi=pmi2 -n {ranks}"``). ``--ranks`` is the number of single-threaded
ranks that fill the node (default: the usable cores); the suites also run at twice that
to measure oversubscription. ``--quick`` takes seconds (for CI); the full run about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fugaku_sim.commands.common import add_launch_arguments, positive_int, positive_number

COMPUTE_MOVED = 1.15  # the two compute launches' speeds differ by more: say so


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="local-calibrated", help="name of the new profile")
    parser.add_argument("--out", type=Path, help="YAML to write (default clusters/<name>.yaml); "
                        "with --from-runs: a stack name (clusters/stacks/NAME.yaml) or a path")
    parser.add_argument("--base", default="local",
                        help="profile whose unmeasured figures (power, scheduler) are kept")
    parser.add_argument("--ranks", type=positive_int,
                        help="ranks that fill the node (default: cores)")
    parser.add_argument("--quick", action="store_true", help="few sizes, short timings (CI)")
    parser.add_argument("--array-MB", type=positive_number, default=4.0, dest="array_MB",
                        help="array size at which memory bandwidth is quoted (default 4)")
    add_launch_arguments(parser, 300.0, "allowed per benchmark launch")
    r = parser.add_argument_group("fit a software stack to measured runs")
    r.add_argument("--from-runs", nargs="+", type=Path, metavar="FILE",
                   help="runs files (CSV) or finished trainer runs (folders, summary.json)")
    r.add_argument("--cluster", help="hardware profile the runs ran on (with --from-runs)")
    r.add_argument("--stack-base", default=None, metavar="STACK",
                   help="stack whose fixed (not free) values are kept (default: ideal)")
    r.add_argument("--free", metavar="P,P", help="parameters to fit (default: GEMM, non-GEMM, "
                   "kernel and step overhead, and the collectives the runs use)")
    r.add_argument("--condition-factor", action="append", default=[],
                   metavar="NAME=VALUE:P,P",
                   help="a factor on parameters P for runs with that condition (a cond_ "
                   "column or a runs column such as processes_per_node); repeatable")
    r.add_argument("--fit-only", metavar="ID,ID",
                   help="fit on these runs only; report the error on the others")
    r.add_argument("--time-quality", default="measured,derived", metavar="Q,Q",
                   help="step-time qualities fitted (default measured,derived)")
    r.add_argument("--include-excluded", action="store_true",
                   help="also fit rows that carry a fit_exclude reason")
    r.add_argument("--description", default="", help="the stack's description")
    r.add_argument("--json", action="store_true", help="print the fit as JSON")


def run(args: argparse.Namespace) -> int:
    if args.from_runs:
        from fugaku_sim.commands.calibrate_runs import run_from_runs

        return run_from_runs(args)
    if args.json:
        from fugaku_sim.errors import UserError

        raise UserError("--json: prints a stack fit; give --from-runs (a calibration of this "
                        "machine writes its profile instead)")
    from rich.console import Console

    from fugaku_sim.calibrate.calibration import fit_calibration
    from fugaku_sim.calibrate.contention import CpuWatch, is_quiet
    from fugaku_sim.calibrate.launch import parse_launcher
    from fugaku_sim.calibrate.measure import measure_machine, planned_runs
    from fugaku_sim.calibrate.profile import calibrated_cluster
    from fugaku_sim.calibrate.provenance import (
        cpu_clock_GHz,
        load_average,
        mem_total_GiB,
        provenance,
        usable_cores,
    )
    from fugaku_sim.calibrate.record import write_profile
    from fugaku_sim.errors import UserError
    from fugaku_sim.progress import Progress
    from fugaku_sim.spec import load_cluster

    ranks = args.ranks or usable_cores()
    if ranks < 2:
        raise UserError(f"--ranks: need at least 2 (point-to-point needs a pair), got {ranks}")
    from fugaku_sim.calibrate.probe import PROBE_NOTE, run_probe
    from fugaku_sim.io import check_output_path

    base = load_cluster(args.base)
    launcher = parse_launcher(args.launcher)
    out = args.out or Path("clusters") / f"{args.name}.yaml"
    check_output_path(out, f"--out {out}")  # before minutes of measurement
    console = Console(stderr=True)
    prov = provenance(["fugaku-sim", *sys.argv[1:]] if sys.argv[1:2] == ["calibrate"] else None)
    prov["launcher"] = launcher.describe()
    prov["allocator"] = args.allocator
    suites = len(planned_runs(ranks))
    with Progress("calibrate") as progress, CpuWatch() as watch:
        done = iter(range(suites))
        raw = measure_machine(launcher, ranks, args.quick,
                              lambda text: progress.update(next(done), suites, "suites", text),
                              args.timeout, args.allocator, args.attempts)
        progress.update(suites, suites, "suites", "measured")
        # the machine's speed now, as validate will probe it before each run
        raw["speed_probe"] = {"seconds": run_probe(), "what": PROBE_NOTE}
    prov["load_average_end"] = load_average()
    times = raw["compute_launches"]["time_vs_first"]
    moved = max(times) / min(times)
    if moved > COMPUTE_MOVED:
        console.print(f"[yellow]calibrate: the compute suite ran {moved:.2f}x slower in one "
                      "of its two launches than in the other (the host's other tenants, "
                      "which /proc/stat does not see); the profile takes the geometric mean "
                      "of both: re-run it when the host is quieter[/yellow]")
    prov["machine_while_measuring"] = watch.figures()
    share = prov["machine_while_measuring"]["foreign_cpu_share"]
    if not is_quiet(share):
        console.print(f"[yellow]calibrate: other work took {share:.0%} of the machine while "
                      "it measured; the profile shows a shared machine (re-run it when "
                      "`uptime` is low)[/yellow]")
    prov["mpi_library"] = raw["compute"].get("mpi_library")
    prov["mpi4py"] = raw["compute"].get("mpi4py")
    cal = fit_calibration(raw, args.array_MB * 2**20)
    spec = calibrated_cluster(base, args.name, cal, cpu_clock_GHz(), mem_total_GiB(),
                              usable_cores())
    sidecar = write_profile(spec, cal, prov, raw, out, args.base)
    _print_summary(console, spec, cal, out, sidecar)
    return 0


def _print_summary(console, spec, cal, out: Path, sidecar: Path) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    node = spec.node
    ic = spec.interconnect
    table = Table(title=f"{spec.name}: calibrated figures (node = {cal.ranks} processes)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("how")
    table.add_row("peak fp32", f"{node.peak_TFLOPs.fp32 * 1e3:.1f} GFLOP/s", "best SGEMM x ranks")
    table.add_row("peak fp64", f"{node.peak_TFLOPs.fp64 * 1e3:.1f} GFLOP/s", "DGEMM 512^3 x ranks")
    table.add_row("GEMM efficiency", ", ".join(f"{p.min_dim}:{p.efficiency:.2f}"
                                             for p in node.gemm_efficiency),
                  f"rms {cal.gemm.rms_rel_error:.0%}")
    table.add_row("memory bandwidth", f"{node.mem_bw_GBps:.2f} GB/s", cal.mem_bw_method)
    table.add_row("STREAM", f"{cal.stream_bw_Bps * cal.ranks / 1e9:.1f} GB/s",
                  f"allocating add at {cal.mem_array_bytes / 2**20:.0f} MiB x ranks (sidecar)")
    if node.elementwise_Gelem_per_s:
        table.add_row("non-GEMM ops", ", ".join(f"{k} {v:.2g}" for k, v in
                                                node.elementwise_Gelem_per_s.items()),
                      "1e9 elements/s per node, from the trainer's kernels; block check "
                      + ", ".join(f"{k} {v:.0%}" for k, v in cal.elementwise_check.items()))
    table.add_row("op overhead", f"{node.op_overhead_us:.2f} us", cal.op_overhead_method)
    table.add_row("intra-node link", f"{ic.intra_node.bw_GBps:.2f} GB/s, "  # type: ignore[union-attr]
                  f"{ic.intra_node.latency_us:.2f} us",  # type: ignore[union-attr]
                  "between compute phases (a slower peer waited for)"
                  if cal.between_compute_link else
                  f"ping-pong + all-reduce fit, rms {cal.allreduce.rms_rel_error:.0%}")
    table.add_row("ping-pong", f"{cal.p2p.bw_Bps / 1e9:.2f} GB/s, {cal.p2p.latency_s * 1e6:.2f} us",
                  f"rms {cal.p2p.rms_rel_error:.0%} (kept in the sidecar)")
    table.add_row(f"share at {2 * cal.ranks} ranks", f"{cal.oversubscribed_share:.2f}",
                  f"half waiting in MPI: {cal.waiting_rank_share:.2f}")
    if cal.oversubscribed_link:
        o = cal.oversubscribed_link
        table.add_row(f"link at {2 * cal.ranks} ranks",
                      f"{o.bw_Bps / 1e9:.2f} GB/s, {o.latency_s * 1e6:.1f} us",
                      f"pairs all-reducing between compute, rms {o.rms_rel_error:.0%} "
                      "(sidecar)")
    if cal.lone:
        table.add_row("lone process", f"GEMM x{cal.lone['peak_ratio']:.2f}, "
                      f"bw x{cal.lone['mem_bw_ratio']:.2f}", "vs one of the busy ranks (sidecar)")
    console.print(table)
    print(f"wrote {out} and {sidecar}")
