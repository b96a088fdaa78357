"""The written calibration: the profile YAML with a provenance header, and its sidecar.

``ClusterSpec`` forbids unknown keys, so provenance is carried twice:

- as a comment header at the top of the YAML (date, host, CPU, versions, load, command, the
  fitted figures and their residuals), readable next to the numbers;
- in full, with every raw measurement, in a sidecar JSON ``<profile>.measurements.json``
  beside the YAML (written first; the YAML names it). Its ``occupancy`` section holds what a
  ``ClusterSpec`` cannot say: how the node behaves for a job of fewer or more ranks than its
  ``processes_per_node`` (read back by :func:`load_occupancy` for ``fugaku-sim validate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fugaku_sim.calibrate.calibration import Calibration
from fugaku_sim.io import read_json_object, write_json, write_text
from fugaku_sim.spec import ClusterSpec
from fugaku_sim.spec.load import dump_yaml


def sidecar_path(profile: Path) -> Path:
    """``clusters/x.yaml`` -> ``clusters/x.measurements.json``."""
    return profile.with_name(f"{profile.stem}.measurements.json")


def occupancy(cal: Calibration, measurements: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a job sees of the node when it runs fewer or more ranks than
    ``processes_per_node``, and the machine's speed probe at calibration (``speed_probe_s``,
    when ``measurements`` hold one): the sidecar's ``occupancy`` section, read by validate."""
    out: dict[str, Any] = {"processes_per_node": cal.ranks, "cores": cal.ranks}
    probe = ((measurements or {}).get("speed_probe") or {}).get("seconds")
    if isinstance(probe, (int, float)):  # validate reads the machine's speed against it
        out["speed_probe_s"] = probe
    if cal.lone:
        out["lone_process"] = {"peak_ratio": cal.lone["peak_ratio"],
                               "mem_bw_ratio": cal.lone["mem_bw_ratio"],
                               "op_overhead_us": cal.lone["op_overhead_s"] * 1e6}
    if cal.oversubscribed_link:
        out["oversubscribed"] = {
            "ranks": 2 * cal.ranks, "compute_share": cal.oversubscribed_share,
            "intra_node_latency_us": cal.oversubscribed_link.latency_s * 1e6,
            "intra_node_bw_GBps": cal.oversubscribed_link.bw_Bps / 1e9}
    return out


def load_occupancy(cluster_file: Path) -> dict[str, Any] | None:
    """The ``occupancy`` section of the sidecar beside the profile ``cluster_file``; None
    when the profile has no sidecar (it was not calibrated) or the section is absent.

    Raises:
        UserError: the sidecar is there but unreadable or not a JSON object.
    """
    sidecar = sidecar_path(cluster_file)
    if not sidecar.exists():
        return None
    data = read_json_object(sidecar, str(sidecar), "recalibrate with `fugaku-sim calibrate`")
    occ = data.get("occupancy")
    return occ if isinstance(occ, dict) else None


def _launches_text(launches: dict[str, Any] | None) -> str:
    """How the compute suite's launches went (measure.pooled_compute), for the header."""
    if not launches or launches.get("launches", 1) < 2:
        return "."
    times = ", ".join(f"{t:.2f}" for t in launches["time_vs_first"])
    return (f"; the compute suite ran {launches['launches']} times (first and last, loops half "
            f"as long), each figure the geometric mean of the launches' (their times against "
            f"the first: {times}).")


def header_lines(spec: ClusterSpec, cal: Calibration, prov: dict[str, Any], base: str,
                 sidecar: Path, compute_launches: dict[str, Any] | None = None) -> list[str]:
    """The YAML's comment header: provenance and each fitted figure with its residual
    (``compute_launches``: the compute suite's launches, measure.pooled_compute)."""
    g = cal.gemm
    curve = ", ".join(f"{d}:{e:.2f}" for d, e in g.points)
    return [
        f"Calibrated by `fugaku-sim calibrate` on {prov['host']} at {prov['date_utc']}.",
        f"Command: {prov['command']}",
        f"CPU: {prov['cpu_model']}, {prov['cores']} cores; Python {prov['python']}, "
        f"numpy {prov['numpy']} ({prov['blas']}); {prov.get('mpi_library', '?')}, "
        f"mpi4py {prov.get('mpi4py', '?')}.",
        f"Load average at start {prov['load_average_start']}, at end "
        f"{prov.get('load_average_end')} (a shared machine disturbs the figures).",
        f"Raw measurements and fits: {sidecar.name} (beside this file).",
        f"Measured with {cal.ranks} single-threaded ranks running at once; node figures = "
        f"{cal.ranks} x the per-process figure. Each compute figure is the median of 5 timed "
        "loops, all shapes interleaved (as validate takes the median step)"
        + _launches_text(compute_launches),
        f"- peak_TFLOPs.fp32: best float32 GEMM rate {g.peak_flops / 1e9:.1f} GFLOP/s per "
        "process (numpy/OpenBLAS, not the datasheet); fp16/bf16 not measured (= fp32);",
        f"  fp64 best float64 GEMM {cal.fp64_flops / 1e9:.1f} GFLOP/s per process.",
        f"- gemm_efficiency (min_dim:eff) {curve}; model rms error {g.rms_rel_error:.1%} "
        "over all shapes.",
        f"  GEMMs fitted net of numpy's matmul call cost {cal.gemm_call_overhead_s * 1e6:.2f} us.",
        f"- op_overhead_us: {cal.op_overhead_method}: {cal.op_overhead_s * 1e6:.2f} us.",
        f"- mem_bw_GBps: {cal.mem_bw_method}: {cal.mem_bw_Bps / 1e9:.2f} GB/s per process "
        f"(rms {cal.mem_bw_rms_rel_error:.0%}); hardware STREAM (allocating add, "
        f"{cal.mem_array_bytes / 2**20:.0f} MiB arrays) {cal.stream_bw_Bps / 1e9:.1f} GB/s.",
        "- elementwise_Gelem_per_s: " + (
            "per-element cost of each non-GEMM op kind and direction (per parameter for "
            "optimizer_*: the trainer's norm, clipping and update), per process (ns): "
            + ", ".join(f"{k} {v * 1e9:.2f}"
                        for k, v in sorted(cal.elementwise_s_per_element.items()))
            + "; from the trainer's layernorm, GELU, cross-entropy and attention kernels (net "
            "of their GEMMs) and, for residual (the glue between kernels), what remains of a "
            "whole block each way; the simulator's block fwd/bwd and head rms error with "
            "them: " + ", ".join(f"{k} {v:.0%}" for k, v in cal.elementwise_check.items())
            + "." if cal.elementwise_s_per_element else "not measured (ops priced by bytes)."),
        "- intra_node: " + (
            f"pairs all-reducing between compute phases on {cal.ranks} ranks, the wait for a "
            "slower or descheduled peer included (the ring fitted to the median over compute "
            f"lengths at each size): latency {cal.between_compute_link.latency_s * 1e6:.2f} us, "
            f"{cal.between_compute_link.bw_Bps / 1e9:.2f} GB/s "
            f"(rms {cal.between_compute_link.rms_rel_error:.0%});"
            if cal.between_compute_link else "not measured between compute phases;"),
        f"  in a tight loop (ping-pong and all-reduce on {cal.ranks} ranks, the simulator's "
        f"message and ring formulas): latency {cal.allreduce.latency_s * 1e6:.2f} us, "
        f"{cal.allreduce.bw_Bps / 1e9:.2f} GB/s (rms {cal.allreduce.rms_rel_error:.0%}"
        + ("" if cal.between_compute_link else "; the profile's link") + "); ping-pong alone "
        f"{cal.p2p.latency_s * 1e6:.2f} us, {cal.p2p.bw_Bps / 1e9:.2f} GB/s "
        f"(rms {cal.p2p.rms_rel_error:.0%}).",
        f"- {2 * cal.ranks} ranks on {cal.ranks} cores: a process gets "
        f"{cal.oversubscribed_share:.2f} of its core-rate ({cal.waiting_rank_share:.2f} with "
        "half the ranks waiting in MPI: waiting MPICH ranks poll and keep their core);",
        "  " + (f"pairs all-reducing between compute phases: latency "
                f"{cal.oversubscribed_link.latency_s * 1e6:.1f} us, "
                f"{cal.oversubscribed_link.bw_Bps / 1e9:.2f} GB/s (ring fitted to the median "
                f"over compute lengths at each size; a peer not running must be scheduled "
                f"first)." if cal.oversubscribed_link else "pairs not measured."),
        "  " + (f"A lone process: {cal.lone['peak_ratio']:.2f} x the GEMM rate, "
                f"{cal.lone['mem_bw_ratio']:.2f} x the effective bandwidth of one of "
                f"{cal.ranks} busy ones." if cal.lone else "Lone process not measured."),
        "  ClusterSpec has no fields for these: they are in the sidecar's 'occupancy' section,",
        "  which `fugaku-sim validate` applies to jobs of fewer or more ranks than cores.",
        f"Not measured, kept from {base}: power_W, mem_reserved_GiB, inter_node, allocation, "
        "scheduler, mtbf_node_h, checkpoint_write_GBps, campaign.",
    ]


def write_profile(
    spec: ClusterSpec, cal: Calibration, prov: dict[str, Any], measurements: dict[str, Any],
    out: Path, base: str,
) -> Path:
    """Write the sidecar JSON, then the YAML (each atomically); returns the sidecar path."""
    sidecar = sidecar_path(out)
    payload = {"provenance": prov, "occupancy": occupancy(cal, measurements),
               "fit": cal.as_dict(),
               "measurements": measurements}
    write_json(sidecar, payload)
    header = "\n".join(f"# {line}" for line in header_lines(
        spec, cal, prov, base, sidecar, measurements.get("compute_launches")))
    text = f"{header}\n{dump_yaml(spec)}"
    yaml.safe_load(text)  # never write a file that does not parse
    write_text(out, text)
    return sidecar

