"""Turn raw measurements into a calibrated ``ClusterSpec`` and write it with its provenance.

What is measured replaces the base profile's figure; what is not measurable from inside a
process (power, the OS's reserved memory, the scheduler) is kept from the base profile and
the header says so. ``ClusterSpec`` forbids unknown keys, so provenance is carried twice:

- as a comment header at the top of the YAML (date, host, CPU, versions, load, command, the
  fitted figures and their residuals), readable next to the numbers;
- in full, with every raw measurement, in a sidecar JSON ``<profile>.measurements.json``
  beside the YAML (written first; the YAML names it).

Per-process figures (each of ``ranks`` single-threaded processes measured while all of them
ran at once) become node figures by multiplying by ``ranks``, and ``processes_per_node`` is
``ranks``: one process per core fills the node.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fugaku_sim.calibrate.fit import (
    AlphaBeta,
    GemmCurve,
    bandwidth_Bps_at,
    best_rate,
    combine_forward_backward,
    compute_share,
    efficiency_at,
    fit_alpha_beta,
    fit_effective_bw,
    fit_gemm_curve,
    fit_kernel_overhead_s,
    fit_op_overhead_s,
    fit_seconds_per_element,
    median_by_bytes,
    p2p_factors,
    ring_allreduce_factors,
    tiny_kernel_rows,
)
from fugaku_sim.errors import UserError
from fugaku_sim.io import atomic_path
from fugaku_sim.spec import ClusterSpec
from fugaku_sim.spec.cluster import SwitchedInterconnect
from fugaku_sim.spec.load import dump_yaml, validate_section

DEFAULT_ARRAY_BYTES = 4 * 2**20  # bandwidth quoted at 4 MiB arrays (see fit_calibration)


@dataclass(frozen=True)
class Calibration:
    """Fitted figures, per process unless named ``node``."""

    ranks: int
    op_overhead_s: float
    op_overhead_method: str
    gemm: GemmCurve
    gemm_call_overhead_s: float
    fp64_flops: float
    mem_bw_Bps: float
    mem_bw_method: str
    mem_bw_rms_rel_error: float
    stream_bw_Bps: float
    mem_array_bytes: float
    p2p: AlphaBeta
    allreduce: AlphaBeta
    oversubscribed_share: float  # compute share of a process at 2 x ranks (1 = no loss)
    waiting_rank_share: float  # share when half of the 2 x ranks wait in MPI instead
    oversubscribed_link: AlphaBeta | None  # pairs' all-reduce between compute, 2 x ranks
    lone: dict[str, float] | None  # a lone process vs one of ``ranks`` busy ones
    # seconds per element of each non-GEMM op kind and direction (empty: not measured)
    elementwise_s_per_element: dict[str, float] = field(default_factory=dict)
    # relative error of the simulator on the trainer's blocks and head with those costs
    elementwise_check: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_calibration(
    measurements: dict[str, Any], array_bytes: float = DEFAULT_ARRAY_BYTES
) -> Calibration:
    """Fit every profile figure from :func:`~fugaku_sim.calibrate.measure.measure_machine`'s
    output.

    The simulator prices a non-GEMM operation as ``bytes / mem_bw + op_overhead`` with its
    own byte count. When the trainer's kernels were timed, ``op_overhead`` is their median
    fixed cost per simulated operation (tiny shapes) and ``mem_bw`` the bandwidth at which
    the simulator's byte counts reproduce their time at working shapes: an *effective*
    bandwidth of this software on this machine (numpy evaluates tanh and exp and allocates
    temporaries; the hardware's STREAM rate is far higher and is kept beside it). Without
    the trainer, they fall back to the median tiny numpy call and the allocating STREAM
    rate at ``array_bytes``. GEMMs are fitted net of numpy's own matmul call cost.

    The intra-node link is fitted to the all-reduce times at
    every rank count with the ring model (the collective the trainer spends its
    communication time in); the ping-pong fit is kept beside it for comparison.

    Raises:
        UserError: a suite's rows are missing or cannot be fitted.
    """
    try:
        compute = measurements["compute"]
        ranks = int(measurements["ranks"])
        call = {r["op"]: float(r["seconds"]) for r in compute["tiny_ops"]}
        gemm_call = call.get("matmul_8", fit_op_overhead_s(compute["tiny_ops"]))
        gemm = fit_gemm_curve(compute["gemm"], gemm_call)
        fp64 = best_rate(compute["gemm"], "float64") or gemm.peak_flops / 2
        stream = bandwidth_Bps_at(compute["stream"], array_bytes, "alloc")
        overhead, overhead_how, bw, bw_how, bw_rms = _elementwise_model(compute, stream, gemm)
        per_element, check = elementwise_costs(compute.get("kernels") or [], gemm, overhead)
        comm = measurements["comm"]
        pingpong = [r for c in comm if c["ranks"] == ranks for r in c.get("pingpong", [])]
        allreduce = [r for c in comm if c["ranks"] == ranks for r in c["allreduce"]]
        # the all-reduce a pair pays between compute phases, every core oversubscribed:
        # the ring fitted to the median cost of each message size over the compute lengths
        pairs = [r for c in comm if c["ranks"] > ranks for r in c.get("sync_after_compute", [])
                 if r["seconds"] > 0]
        p2p = fit_alpha_beta(pingpong, p2p_factors)
        link = fit_alpha_beta([{**r, "kind": "p2p"} for r in pingpong]
                              + [{**r, "kind": "allreduce"} for r in allreduce],
                              row_factors=_link_factors)
        typical = median_by_bytes(pairs)
        over_link = (fit_alpha_beta(typical, ring_allreduce_factors) if len(typical) >= 2
                     else None)
        lone = _lone_process(measurements.get("compute_lone"), gemm, bw)
        shares = {s["ranks"]: s["share"] for s in measurements["share"]}
        base, over = shares[ranks], shares[2 * ranks]
    except (KeyError, ValueError, IndexError) as exc:
        raise UserError(f"calibrate: cannot fit the measurements ({exc})") from None
    return Calibration(
        ranks=ranks,
        op_overhead_s=overhead,
        op_overhead_method=overhead_how,
        gemm=gemm,
        gemm_call_overhead_s=gemm_call,
        fp64_flops=fp64,
        mem_bw_Bps=bw,
        mem_bw_method=bw_how,
        mem_bw_rms_rel_error=bw_rms,
        stream_bw_Bps=stream,
        mem_array_bytes=array_bytes,
        p2p=p2p,
        allreduce=link,
        oversubscribed_share=compute_share(base["all_busy_seconds"], over["all_busy_seconds"]),
        waiting_rank_share=compute_share(base["all_busy_seconds"], over["half_busy_seconds"]),
        oversubscribed_link=over_link,
        lone=lone,
        elementwise_s_per_element=per_element,
        elementwise_check=check,
    )


def _link_factors(row: Mapping[str, Any]) -> tuple[float, float]:
    """The simulator's intra-node cost factors of a row: one message for ping-pong, the ring
    for an all-reduce (``fugaku_sim.sim.collectives``; checked against it in the tests)."""
    n = int(row.get("ranks", 2))
    return p2p_factors(n) if row.get("kind") == "p2p" else ring_allreduce_factors(n)


def _lone_process(
    compute: dict[str, Any] | None, gemm: GemmCurve, bw: float
) -> dict[str, float] | None:
    """How a process alone on the node compares with one of ``ranks`` busy ones: ratios of
    the best GEMM rate and of the effective bandwidth, and its own per-op overhead."""
    if not compute:
        return None
    call = {r["op"]: float(r["seconds"]) for r in compute["tiny_ops"]}
    lone_gemm = fit_gemm_curve(compute["gemm"], call.get("matmul_8", 0.0))
    overhead, _, lone_bw, _, _ = _elementwise_model(compute, bw, lone_gemm)
    return {"peak_ratio": lone_gemm.peak_flops / gemm.peak_flops,
            "mem_bw_ratio": lone_bw / bw, "op_overhead_s": overhead}


def occupancy(cal: Calibration) -> dict[str, Any]:
    """What a job sees of the node when it runs fewer or more ranks than
    ``processes_per_node`` (the sidecar's ``occupancy`` section, read by validate)."""
    out: dict[str, Any] = {"processes_per_node": cal.ranks, "cores": cal.ranks}
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


def _elementwise_model(
    compute: dict[str, Any], stream_Bps: float, gemm: GemmCurve
) -> tuple[float, str, float, str, float]:
    """(op_overhead_s, how, mem_bw_Bps, how, rms) from the trainer's kernels, or fallbacks."""
    kernels = compute.get("kernels") or []
    numpy_call = fit_op_overhead_s(compute["tiny_ops"])
    if not kernels:
        return (numpy_call, "median tiny numpy call (trainer kernels not timed)", stream_Bps,
                "allocating STREAM (trainer kernels not timed)", float("nan"))
    try:
        per_block = simulated_ops_per_block()
    except ImportError:
        per_block = 0
    overhead = fit_kernel_overhead_s(kernels, per_block)
    how = (f"trainer's block fwd+bwd at a tiny shape / {per_block} simulated ops" if per_block
           else "median per simulated op of the trainer's kernels at a tiny shape")
    try:
        bw, rms = fit_effective_bw(combine_forward_backward(kernels),
                                   functools.partial(simulated_kernel_cost, gemm=gemm))
    except (ImportError, ValueError) as exc:
        return overhead, how, stream_Bps, f"allocating STREAM ({exc})", float("nan")
    return (overhead, how, bw,
            "effective: the simulator's bytes over the trainer's block (fwd+bwd) and head "
            "times", rms)


def simulated_kernel_cost(
    row: Mapping[str, Any], gemm: GemmCurve
) -> tuple[float, float] | None:
    """How ``fugaku_sim.sim.compute`` prices what a timed kernel row stands for: (seconds of
    its GEMMs on ``gemm``'s curve, bytes it moves at memory bandwidth). None for kernels it
    prices as GEMMs only (linear layers)."""
    from fugaku_sim.sim import compute as sim

    name = str(row["kernel"])
    base, _, direction = name.rpartition("_")
    if base in ("block", "attention"):
        job = _kernel_job(int(row["B"]), int(row["T"]), int(row["C"]), 4 * int(row["C"]), 32,
                          int(row["heads"]))
        if base == "block":
            parts = sim.attention_ops(job) + sim.mlp_ops(job) + [sim.residual_op(job)]
        else:
            parts = [op for op in sim.attention_ops(job)
                     if op.name in ("scores", "softmax", "attn_values")]
    elif base == "block_fwd" and direction == "bwd":
        job = _kernel_job(int(row["B"]), int(row["T"]), int(row["C"]), 4 * int(row["C"]), 32,
                          int(row["heads"]))
        parts = sim.attention_ops(job) + sim.mlp_ops(job) + [sim.residual_op(job)]
        direction = "fwd_bwd"
    elif name == "head_fwd_bwd":
        job = _kernel_job(1, int(row["tokens"]), int(row["C"]), 4 * int(row["C"]),
                          int(row["V"]), 1)
        parts = sim.head_forward_ops(job)
        direction = "fwd_bwd"
    else:
        ops = _simulated_ops(1, int(row["tokens"]), int(row["C"]), int(row["F"]),
                             int(row["V"]), 1)
        key = {"layernorm": "layernorm2", "gelu": "gelu", "cross_entropy": "cross_entropy",
               "cross_entropy_fwd": "cross_entropy"}.get(base)
        if key is None:
            return None
        parts = [ops[key]]
        if base == "cross_entropy_fwd" and direction == "bwd":
            direction = "fwd_bwd"
    if direction == "fwd_bwd":
        parts = parts + [sim.backward_of(op) for op in parts]
    elif direction == "bwd":
        parts = [sim.backward_of(op) for op in parts]
    seconds = sum(op.flops / (gemm.peak_flops * efficiency_at(gemm.points, op.min_dim))
                  for op in parts if op.min_dim)
    nbytes = sum(float(op.bytes) for op in parts if not op.min_dim)
    return seconds, nbytes


def _gemm_seconds(ops: list[Any], gemm: GemmCurve) -> float:
    return sum(op.flops / (gemm.peak_flops * efficiency_at(gemm.points, op.min_dim))
               for op in ops if op.min_dim)


def _unit_ops(row: Mapping[str, Any], backward: bool) -> list[Any]:
    """The simulator's ops for a timed block (attention + MLP + residual) or attention row,
    forward or backward (their backwards)."""
    from fugaku_sim.sim import compute as sim

    job = _kernel_job_cached(int(row["B"]), int(row["T"]), int(row["C"]), 4 * int(row["C"]),
                             32, int(row["heads"]))
    if str(row["kernel"]).startswith("block_"):
        ops = sim.attention_ops(job) + sim.mlp_ops(job) + [sim.residual_op(job)]
    else:
        ops = [op for op in sim.attention_ops(job)
               if op.name in ("scores", "softmax", "attn_values")]
    return [sim.backward_of(op) for op in ops] if backward else ops


def _head_ops(row: Mapping[str, Any]) -> list[Any]:
    from fugaku_sim.sim import compute as sim

    job = _kernel_job_cached(1, int(row["tokens"]), int(row["C"]), 4 * int(row["C"]),
                             int(row["V"]), 1)
    fwd = sim.head_forward_ops(job)
    return fwd + [sim.backward_of(op) for op in fwd]


def elementwise_costs(
    kernels: list[dict[str, Any]], gemm: GemmCurve, op_overhead_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per element (per process, every rank busy) of each non-GEMM op kind and
    direction the simulator counts, fitted to the trainer's own kernels at working shapes
    (each net of the same kernel's time at the tiny shape, its fixed cost):

    - ``layernorm``, ``gelu``: the kernels, over [tokens, C] and [tokens, F] elements;
    - ``cross_entropy``: the forward over [tokens, V] and the backward (forward+backward
      minus forward at the same shape) give the split; the level is what remains of the
      trainer's whole head (forward+backward) once its GEMMs and layer norms are priced,
      over its tokens x V logits (the head's GEMMs writing the whole logits run below the
      GEMM curve, and that cost scales with the logits too);
    - ``softmax``: the attention kernels net of their two GEMMs on the fitted GEMM curve,
      over B x heads x T x T scores (scale, mask, exp, normalise, and their backward);
    - ``residual``: what remains of a whole block each way once its GEMMs and the kinds
      above are priced, over the block's residual elements (2 x tokens x C): the glue
      between kernels (bias adds, head split and merge copies, residual adds, gradient
      accumulation) scales with the hidden states.

    Also returns a check: the rms relative error of the simulator's block forward, block
    backward and head forward+backward against their timed rows with these costs (GEMMs on
    the curve, ``op_overhead_s`` per op). Empty mappings without the trainer's kernels.
    """
    tiny = tiny_kernel_rows(kernels) if kernels else {}
    if not tiny:
        return {}, {}
    smallest = {k: min(int(q["tokens"]) for q in kernels if q["kernel"] == k) for k in tiny}
    work = [r for r in kernels if int(r["tokens"]) > smallest[str(r["kernel"])]]
    cost: dict[str, float] = {}

    def fit(key: str, points: list[tuple[float, float, float]]) -> None:
        if points and (c := fit_seconds_per_element(points)) > 0:
            cost[key] = c

    for kind, dim in (("layernorm", "C"), ("gelu", "F")):
        for d in ("fwd", "bwd"):
            k = f"{kind}_{d}"
            fit(k, [(float(r["tokens"]) * float(r[dim]), float(r["seconds"]) - tiny[k],
                     float(r["seconds"])) for r in work if r["kernel"] == k])
    ce_f = {(r["tokens"], r["V"]): float(r["seconds"]) for r in work
            if r["kernel"] == "cross_entropy_fwd"}
    ce_fb = {(r["tokens"], r["V"]): float(r["seconds"]) for r in work
             if r["kernel"] == "cross_entropy_fwd_bwd"}
    if "cross_entropy_fwd" in tiny:
        fit("cross_entropy_fwd", [(float(t * v), s - tiny["cross_entropy_fwd"], s)
                                  for (t, v), s in ce_f.items()])
    if {"cross_entropy_fwd", "cross_entropy_fwd_bwd"} <= tiny.keys():
        fixed = tiny["cross_entropy_fwd_bwd"] - tiny["cross_entropy_fwd"]
        fit("cross_entropy_bwd", [(float(key[0] * key[1]), ce_fb[key] - ce_f[key] - fixed,
                                   ce_fb[key] - ce_f[key]) for key in ce_f if key in ce_fb])
    for d in ("fwd", "bwd"):
        k = f"attention_{d}"
        pts = []
        for r in work:
            if r["kernel"] == k:
                ops = _unit_ops(r, d == "bwd")
                el = sum(op.elements for op in ops if op.kind == "softmax")
                s = float(r["seconds"])
                pts.append((el, s - tiny[k] - _gemm_seconds(ops, gemm), s))
        fit(f"softmax_{d}", pts)

    def priced(ops: list[Any], skip: str = "") -> float:
        return _gemm_seconds(ops, gemm) + sum(op.elements * cost.get(op.rate_key, 0.0)
                                              for op in ops if op.kind and op.kind != skip)

    for d in ("fwd", "bwd"):
        k = f"block_{d}"
        pts = []
        for r in work:
            if r["kernel"] == k:
                ops = _unit_ops(r, d == "bwd")
                el = sum(op.elements for op in ops if op.kind == "residual")
                s = float(r["seconds"])
                pts.append((el, s - tiny[k] - priced(ops, "residual"), s))
        fit(f"residual_{d}", pts)
    # the cross-entropy as the head runs it: what remains of the head (fwd+bwd) once its
    # GEMMs and layer norms are priced, over its tokens x V logits, split between forward
    # and backward as the single kernels split it (the head's GEMMs write the whole logits,
    # which the GEMM curve's square-ish shapes do not)
    if "head_fwd_bwd" in tiny and {"cross_entropy_fwd", "cross_entropy_bwd"} <= cost.keys():
        pts = []
        for r in work:
            if r["kernel"] == "head_fwd_bwd":
                ops = _head_ops(r)
                el = sum(op.elements for op in ops if op.rate_key == "cross_entropy_fwd")
                s = float(r["seconds"])
                pts.append((el, s - tiny["head_fwd_bwd"] - priced(ops, "cross_entropy"), s))
        if pts and (both := fit_seconds_per_element(pts)) > 0:
            share = cost["cross_entropy_fwd"] / (cost["cross_entropy_fwd"]
                                                 + cost["cross_entropy_bwd"])
            cost["cross_entropy_fwd"] = both * share
            cost["cross_entropy_bwd"] = both * (1.0 - share)
    check: dict[str, float] = {}
    for unit in ("block_fwd", "block_bwd", "head_fwd_bwd"):
        errs = []
        for r in work:
            if r["kernel"] == unit:
                ops = _head_ops(r) if unit == "head_fwd_bwd" else _unit_ops(r, unit == "block_bwd")
                pred = priced(ops) + len(ops) * op_overhead_s
                errs.append(pred / float(r["seconds"]) - 1.0)
        if errs:
            check[unit] = float(np.sqrt(np.mean(np.square(errs))))
    return cost, check


def simulated_ops_per_block() -> int:
    """Operations ``fugaku_sim.sim.compute`` prices for one block forward plus backward
    (attention and MLP halves and the second residual, each way)."""
    from fugaku_sim.sim import compute as sim

    job = _kernel_job(1, 8, 8, 32, 32, 2)
    return 2 * (len(sim.attention_ops(job)) + len(sim.mlp_ops(job)) + 1)


def _kernel_job(b: int, t: int, c: int, f: int, v: int, heads: int) -> Any:
    from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job

    model = ModelSpec(name="kernel", layers=1, hidden=c, heads=heads, ffn_hidden=f,
                      seq_len=t, vocab=v)
    return make_job(load_cluster("local"), model, TrainSpec(global_batch=b, micro_batch=b),
                    Layout(processes_per_node=1))


@functools.lru_cache(maxsize=64)
def _kernel_job_cached(b: int, t: int, c: int, f: int, v: int, heads: int) -> Any:
    return _kernel_job(b, t, c, f, v, heads)


@functools.lru_cache(maxsize=64)
def _simulated_ops(b: int, t: int, c: int, f: int, v: int, heads: int) -> dict[str, Any]:
    from fugaku_sim.sim import compute as sim

    job = _kernel_job(b, t, c, f, v, heads)
    ops = sim.attention_ops(job) + sim.mlp_ops(job) + sim.head_forward_ops(job)
    return {op.name: op for op in ops}


def calibrated_cluster(
    base: ClusterSpec, name: str, cal: Calibration, clock_GHz: float | None,
    mem_GiB: float | None, cores: int | None = None,
) -> ClusterSpec:
    """``base`` with every measured figure replaced by ``cal``'s (node = ranks x process).

    Raises:
        UserError: ``base`` is not a single-node switched profile.
    """
    if not isinstance(base.interconnect, SwitchedInterconnect):
        raise UserError(f"--base: {base.name} has a {base.interconnect.kind} interconnect; "
                        "calibrate measures one machine: use a switched profile (local)")
    n = cal.ranks
    fp32_T = cal.gemm.peak_flops * n / 1e12
    data = base.model_dump(mode="json")
    data["name"] = name
    data["description"] = f"{base.description} (calibrated by fugaku-sim calibrate)".strip()
    node = data["node"]
    node.update(
        cores=cores or n,
        processes_per_node=n,
        peak_TFLOPs={"fp64": cal.fp64_flops * n / 1e12, "fp32": fp32_T,
                     "fp16": fp32_T, "bf16": fp32_T},
        mem_bw_GBps=cal.mem_bw_Bps * n / 1e9,
        gemm_efficiency=[{"min_dim": d, "efficiency": e} for d, e in cal.gemm.points],
        op_overhead_us=cal.op_overhead_s * 1e6,
        elementwise_Gelem_per_s={k: n / c / 1e9
                                 for k, c in sorted(cal.elementwise_s_per_element.items())},
    )
    if clock_GHz:
        node["clock_GHz"] = clock_GHz
    if mem_GiB:
        node["mem_GiB"] = mem_GiB
    data["interconnect"]["intra_node"].update(
        bw_GBps=cal.allreduce.bw_Bps / 1e9, latency_us=cal.allreduce.latency_s * 1e6
    )
    return validate_section(ClusterSpec, _rounded(data), f"calibrated profile {name}")


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, so the YAML stays readable."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def sidecar_path(profile: Path) -> Path:
    """``clusters/x.yaml`` -> ``clusters/x.measurements.json``."""
    return profile.with_name(f"{profile.stem}.measurements.json")


def header_lines(spec: ClusterSpec, cal: Calibration, prov: dict[str, Any], base: str,
                 sidecar: Path) -> list[str]:
    """The YAML's comment header: provenance and each fitted figure with its residual."""
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
        f"{cal.ranks} x the per-process figure.",
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
            "per-element cost of each non-GEMM op kind and direction, per process (ns): "
            + ", ".join(f"{k} {v * 1e9:.2f}"
                        for k, v in sorted(cal.elementwise_s_per_element.items()))
            + "; from the trainer's layernorm, GELU, cross-entropy and attention kernels (net "
            "of their GEMMs) and, for residual (the glue between kernels), what remains of a "
            "whole block each way; the simulator's block fwd/bwd and head rms error with "
            "them: " + ", ".join(f"{k} {v:.0%}" for k, v in cal.elementwise_check.items())
            + "." if cal.elementwise_s_per_element else "not measured (ops priced by bytes)."),
        f"- intra_node: one link fitted to the ping-pong and all-reduce times on {cal.ranks} "
        f"ranks (the simulator's message and ring formulas): latency "
        f"{cal.allreduce.latency_s * 1e6:.2f} us, {cal.allreduce.bw_Bps / 1e9:.2f} GB/s "
        f"(rms {cal.allreduce.rms_rel_error:.0%}); ping-pong alone {cal.p2p.latency_s * 1e6:.2f} "
        f"us, {cal.p2p.bw_Bps / 1e9:.2f} GB/s (rms {cal.p2p.rms_rel_error:.0%}).",
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
    payload = {"provenance": prov, "occupancy": occupancy(cal), "fit": cal.as_dict(),
               "measurements": measurements}
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    header = "\n".join(f"# {line}" for line in header_lines(spec, cal, prov, base, sidecar))
    text = f"{header}\n{dump_yaml(spec)}"
    yaml.safe_load(text)  # never write a file that does not parse
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return sidecar

