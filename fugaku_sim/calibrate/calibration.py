"""Fit every figure of a calibrated profile from raw microbenchmark measurements.

:func:`fit_calibration` turns the rows :func:`~fugaku_sim.calibrate.measure.measure_machine`
collects into a :class:`Calibration`: per-process figures (GEMM curve, per-op overhead,
effective memory bandwidth, per-element costs of non-GEMM ops, the intra-node link) and what
a job of fewer or more ranks than cores sees of the node. Pure: no files, no MPI.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fugaku_sim.calibrate.fit import (
    AlphaBeta,
    GemmCurve,
    bandwidth_Bps_at,
    best_rate,
    combine_forward_backward,
    compute_share,
    fit_alpha_beta,
    fit_effective_bw,
    fit_gemm_curve,
    fit_kernel_overhead_s,
    fit_op_overhead_s,
    median_by_bytes,
    p2p_factors,
    ring_allreduce_factors,
    tiny_kernel_rows,
)
from fugaku_sim.calibrate.kernels import (
    elementwise_costs,
    optimizer_costs,
    simulated_kernel_cost,
    simulated_ops_per_block,
)
from fugaku_sim.errors import UserError

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
    # pairs' all-reduce between compute phases at ``ranks`` (None: not measured)
    between_compute_link: AlphaBeta | None = None
    # seconds per element of each non-GEMM op kind and direction, and per parameter of each
    # optimizer (empty: not measured)
    elementwise_s_per_element: dict[str, float] = field(default_factory=dict)
    # relative error of the simulator on the trainer's blocks and head with those costs
    elementwise_check: dict[str, float] = field(default_factory=dict)

    @property
    def intra_node_link(self) -> AlphaBeta:
        """The link the profile gets: the all-reduce between compute phases when measured
        (what a training step's collectives see: a rank that arrives first waits for its
        peer), else the tight-loop ping-pong and all-reduce fit."""
        return self.between_compute_link or self.allreduce

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_calibration(
    measurements: dict[str, Any], array_bytes: float = DEFAULT_ARRAY_BYTES
) -> Calibration:
    """Fit every profile figure from :func:`~fugaku_sim.calibrate.measure.measure_machine`'s
    output.

    The simulator prices a non-GEMM operation as ``bytes / mem_bw + op_overhead`` with its
    own byte count. When the trainer's kernels were timed, ``op_overhead`` is their fixed
    cost per simulated operation (the whole block's forward and backward at a tiny shape over
    the operations the simulator counts for it; without block rows the median over the
    kernels) and ``mem_bw`` the bandwidth at which the simulator's byte counts reproduce
    their time at working shapes: an *effective*
    bandwidth of this software on this machine (numpy evaluates tanh and exp and allocates
    temporaries; the hardware's STREAM rate is far higher and is kept beside it). Without
    the trainer, they fall back to the median tiny numpy call and the allocating STREAM
    rate at ``array_bytes``. GEMMs are fitted net of numpy's own matmul call cost.

    The intra-node link is one latency and bandwidth fitted to the ping-pong and the
    all-reduce times on ``ranks`` ranks together, each priced the way the simulator prices
    it (one message; the ring); the ping-pong fit alone is kept beside it for comparison.

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
        per_element.update(optimizer_costs(compute.get("optimizer") or []))
        p2p, link, over_link = _fit_links(measurements["comm"], ranks)
        busy_link = _between_compute_link(measurements["comm"], lambda n: n == ranks)
        lone = _lone_process(lone_rows(measurements), compute, overhead, gemm_call)
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
        oversubscribed_share=oversubscribed_share(base, over),
        waiting_rank_share=compute_share(base["all_busy_seconds"], over["half_busy_seconds"]),
        oversubscribed_link=over_link,
        between_compute_link=busy_link,
        lone=lone,
        elementwise_s_per_element=per_element,
        elementwise_check=check,
    )


def _fit_links(
    comm: list[dict[str, Any]], ranks: int
) -> tuple[AlphaBeta, AlphaBeta, AlphaBeta | None]:
    """(ping-pong alone, the intra-node link, the oversubscribed pairs' link or None) from
    the ``comm`` suite's rows.

    Raises:
        KeyError, ValueError: rows are missing or too few to fit.
    """
    pingpong = [r for c in comm if c["ranks"] == ranks for r in c.get("pingpong", [])]
    allreduce = [r for c in comm if c["ranks"] == ranks for r in c["allreduce"]]
    link = fit_alpha_beta([{**r, "kind": "p2p"} for r in pingpong]
                          + [{**r, "kind": "allreduce"} for r in allreduce],
                          row_factors=_link_factors)
    over = _between_compute_link(comm, lambda n: n > ranks)
    return fit_alpha_beta(pingpong, p2p_factors), link, over


def _between_compute_link(comm: list[dict[str, Any]], at: Callable[[int], bool]
                          ) -> AlphaBeta | None:
    """The all-reduce a pair pays between compute phases (the wait for a slower or
    descheduled peer included) on the rank counts ``at`` accepts: the ring fitted to the
    median cost of each message size over the compute lengths; None if not measured, or if
    the measured costs do not grow with the message size."""
    typical = median_by_bytes([r for c in comm if at(int(c["ranks"]))
                               for r in c.get("sync_after_compute", []) if r["seconds"] > 0])
    if len(typical) < 2:
        return None
    try:
        return fit_alpha_beta(typical, ring_allreduce_factors)
    except ValueError:
        # the waits did not grow with the message (noise above the per-byte cost): no link
        # to fit, and the caller falls back to the hot-loop all-reduce
        return None


def _link_factors(row: Mapping[str, Any]) -> tuple[float, float]:
    """The simulator's intra-node cost factors of a row: one message for ping-pong, the ring
    for an all-reduce (``fugaku_sim.sim.collectives``; checked against it in the tests)."""
    n = int(row.get("ranks", 2))
    return p2p_factors(n) if row.get("kind") == "p2p" else ring_allreduce_factors(n)


def oversubscribed_share(base: Mapping[str, Any], over: Mapping[str, Any]) -> float:
    """The core share of a process at twice as many ranks as cores: from the oversubscribed
    job's own trials that alternate every rank busy with the upper half asleep (the same
    seconds), else (an older sidecar) its all-busy time against the job at one rank per
    core."""
    if "half_asleep_seconds" in over:
        return compute_share(over["half_asleep_seconds"], over["interleaved_all_busy_seconds"])
    return compute_share(base["all_busy_seconds"], over["all_busy_seconds"])


def lone_rows(measurements: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compute rows of a lone process: the compute suite's own lone loops (rows with
    ``lone_seconds``, interleaved with the busy ones), else an older sidecar's separate
    one-rank ``compute_lone`` suite, else None."""
    compute = measurements.get("compute") or {}
    if any("lone_seconds" in r for r in compute.get("gemm") or []):
        return {section: [{**r, "seconds": r["lone_seconds"]} for r in rows
                          if "lone_seconds" in r]
                for section, rows in compute.items() if isinstance(rows, list)}
    lone = measurements.get("compute_lone")
    return dict(lone) if lone else None


_TIMES = ("seconds", "seconds_per_rank", "lone_seconds")


def _row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a compute row measured (everything but its times), to pair busy and lone rows."""
    return tuple(sorted((k, str(v)) for k, v in row.items() if k not in _TIMES))


def _median_ratio(busy: list[Mapping[str, Any]], lone: list[Mapping[str, Any]],
                  keep: Callable[[Mapping[str, Any]], bool], what: str) -> float:
    """The median, over the rows timed both ways that ``keep`` accepts, of busy / lone
    seconds.

    Raises:
        ValueError: no such row.
    """
    lone_s = {_row_key(r): float(r["seconds"]) for r in lone}
    ratios = [float(r["seconds"]) / lone_s[key] for r in busy
              if keep(r) and (key := _row_key(r)) in lone_s and lone_s[key] > 0]
    if not ratios:
        raise ValueError(f"no {what} timed both alone and with every rank busy")
    return float(statistics.median(ratios))


def lone_gemm_ratio(busy: list[Mapping[str, Any]], lone: list[Mapping[str, Any]],
                    call_s: float) -> float:
    """A lone process's float32 GEMM rate over a busy one's: the median, over the shapes
    timed both ways whose busy time is at least twice the call cost, of busy / lone seconds
    (a ratio of curve peaks, the best of a few noisy rates each, swung by 20% between
    calibrations of one machine).

    Raises:
        ValueError: no shape was timed both ways.
    """
    f32 = [r for r in busy if r.get("dtype", "float32") == "float32"]
    solid = [r for r in f32 if float(r["seconds"]) >= 2 * call_s] or f32
    return _median_ratio(solid, lone, lambda r: True, "GEMM shape")


def _lone_process(
    compute: dict[str, Any] | None, busy: dict[str, Any], overhead_s: float, call_s: float,
) -> dict[str, float] | None:
    """How a process alone on the node compares with one of ``ranks`` busy ones, each a
    median of per-row ratios of busy / lone seconds (the rows paired by what they measured):
    the GEMM rate (:func:`lone_gemm_ratio`); the effective bandwidth, from the trainer's
    kernels and model passes at working shapes; the per-op overhead, from the tiny numpy
    calls and the trainer's kernels at the tiny shape. A ratio of two separately fitted
    figures (each a fit of net-of-GEMM times) swung from 0.85 to 1.38 between calibrations
    of one quiet machine while the rows' own ratios stayed within 0.94-1.09."""
    if not compute:
        return None
    kernels = busy.get("kernels") or []
    lone_kernels = compute.get("kernels") or []

    def working(r: Mapping[str, Any]) -> bool:
        return int(r.get("tokens", 0)) > 8

    bw_ratio = (_median_ratio(kernels, lone_kernels, working, "trainer kernel")
                if kernels else _median_ratio(busy["stream"], compute["stream"],
                                              lambda r: True, "STREAM row"))
    tiny = _median_ratio(busy["tiny_ops"] + [r for r in kernels if not working(r)],
                         compute["tiny_ops"] + lone_kernels, lambda r: True, "tiny call")
    return {"peak_ratio": lone_gemm_ratio(busy["gemm"], compute["gemm"], call_s),
            "mem_bw_ratio": bw_ratio, "op_overhead_s": overhead_s / tiny}


def _elementwise_model(
    compute: dict[str, Any], stream_Bps: float, gemm: GemmCurve
) -> tuple[float, str, float, str, float]:
    """(op_overhead_s, how, mem_bw_Bps, how, rms) from the trainer's kernels, or fallbacks."""
    kernels = compute.get("kernels") or []
    numpy_call = fit_op_overhead_s(compute["tiny_ops"])
    if not kernels:
        return (numpy_call, "median tiny numpy call (trainer kernels not timed)", stream_Bps,
                "allocating STREAM (trainer kernels not timed)", float("nan"))
    per_block = simulated_ops_per_block()
    overhead = fit_kernel_overhead_s(kernels, per_block)
    how = (f"trainer's block fwd+bwd at a tiny shape / {per_block} simulated ops"
           if {"block_fwd", "block_bwd"} <= tiny_kernel_rows(kernels).keys()
           else "median per simulated op of the trainer's kernels at a tiny shape")
    try:
        bw, rms = fit_effective_bw(combine_forward_backward(kernels),
                                   functools.partial(simulated_kernel_cost, gemm=gemm))
    except ValueError as exc:
        return overhead, how, stream_Bps, f"allocating STREAM ({exc})", float("nan")
    return (overhead, how, bw,
            "effective: the simulator's bytes over the trainer's block (fwd+bwd) and head "
            "times", rms)
