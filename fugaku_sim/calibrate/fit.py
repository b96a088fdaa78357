"""Fit cluster-profile parameters to microbenchmark measurements (pure functions, no MPI).

Each function takes the raw rows a suite of :mod:`fugaku_sim.calibrate.bench` wrote and
returns the parameter the simulator uses, with the residual that says how well it fits:

- :func:`fit_op_overhead_s` — fixed seconds per operation (the median tiny numpy call);
- :func:`fit_gemm_curve` — the best per-process GEMM rate and the efficiency curve over the
  smallest GEMM dimension, after the fixed per-call cost is taken off;
- :func:`bandwidth_Bps_at` — STREAM-like bandwidth at an array size (log-log interpolation);
- :func:`fit_alpha_beta` — latency and bandwidth of a message-passing cost
  ``t = a(n) alpha + b(n) bytes / beta`` by least squares on relative error (Hockney's
  alpha-beta model; the per-algorithm factors a, b follow Thakur, Rabenseifner and Gropp,
  "Optimization of Collective Communication Operations in MPICH", IJHPCA 2005);
- :func:`compute_share` — the fraction of a core one process gets when ranks outnumber cores.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.sim.collectives import ring_allreduce_steps, ring_allreduce_volume


@dataclass(frozen=True)
class AlphaBeta:
    """A fitted latency (s) and bandwidth (bytes/s), with the RMS relative residual."""

    latency_s: float
    bw_Bps: float
    rms_rel_error: float
    points: int


def p2p_factors(ranks: int) -> tuple[float, float]:
    """(latency, bandwidth) factors of one point-to-point message: t = alpha + bytes/beta."""
    return 1.0, 1.0


def ring_allreduce_factors(ranks: int) -> tuple[float, float]:
    """Ring all-reduce (reduce-scatter then all-gather): 2(n-1) steps, each moving bytes/n,
    so t = 2(n-1) alpha + 2(n-1)/n bytes/beta (Thakur et al. 2005, section 4.4)."""
    n = max(ranks, 1)
    return float(ring_allreduce_steps(n)), ring_allreduce_volume(n)


Factors = Callable[[int], tuple[float, float]]
RowFactors = Callable[[Mapping[str, Any]], tuple[float, float]]


def by_ranks(factors: Factors) -> RowFactors:
    """Row factors from rank-count factors (a row's ``ranks``, 2 when absent)."""
    return lambda row: factors(int(row.get("ranks", 2)))


def fit_alpha_beta(
    rows: Iterable[Mapping[str, Any]], factors: Factors | None = None,
    row_factors: RowFactors | None = None,
) -> AlphaBeta:
    """Least-squares latency and bandwidth of rows ``{bytes, seconds[, ranks]}``.

    ``factors`` maps a row's rank count to its (latency, bandwidth) factors (default: one
    point-to-point message); ``row_factors``, for mixed rows, maps the row itself.

    Minimises the relative residual (each equation divided by its measured time), so that
    8-byte and 32-MB messages weigh alike. A negative latency is clamped to zero and the
    bandwidth refitted alone.

    Raises:
        ValueError: fewer than two rows, or no positive bandwidth fits.
    """
    rows = list(rows)
    if len(rows) < 2:
        raise ValueError("fit_alpha_beta: need at least two measurements")
    rf = row_factors or by_ranks(factors or p2p_factors)
    coeffs = []
    for r in rows:
        la, bf = rf(r)
        coeffs.append([la, bf * float(r["bytes"])])
    a = np.array(coeffs)  # (rows, 2)
    t = np.array([float(r["seconds"]) for r in rows])
    w = 1.0 / t
    coef, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
    alpha, inv_beta = float(coef[0]), float(coef[1])
    if alpha < 0:
        alpha = 0.0
        col = a[:, 1] * w
        inv_beta = float(col @ (t * w) / (col @ col))
    if inv_beta <= 0:
        raise ValueError("fit_alpha_beta: no positive bandwidth fits these times")
    pred = a @ np.array([alpha, inv_beta])
    rms = float(np.sqrt(np.mean(((pred - t) / t) ** 2)))
    return AlphaBeta(alpha, 1.0 / inv_beta, rms, len(rows))


def fit_op_overhead_s(tiny_ops: Iterable[Mapping[str, Any]]) -> float:
    """Fixed cost of one operation: the median seconds per call of operations on 8-element
    arrays (their arithmetic is negligible, so the time is dispatch and allocation)."""
    times = [float(r["seconds"]) for r in tiny_ops]
    if not times:
        raise ValueError("fit_op_overhead_s: no tiny-operation measurements")
    return statistics.median(times)


@dataclass(frozen=True)
class GemmCurve:
    """Best per-process GEMM rate (FLOP/s) and efficiency relative to it by ``min_dim``."""

    peak_flops: float
    points: list[tuple[int, float]]  # (min_dim, efficiency), min_dim increasing
    rms_rel_error: float  # of the curve + overhead model against every measured shape


def gemm_time_s(flops: float, min_dim: float, curve: GemmCurve, overhead_s: float) -> float:
    """The simulator's compute model for one GEMM: overhead + FLOPs / (peak x efficiency),
    efficiency piecewise linear in log2(min_dim), flat beyond the ends."""
    return overhead_s + flops / (curve.peak_flops * efficiency_at(curve.points, min_dim))


def efficiency_at(points: Sequence[tuple[int, float]], min_dim: float) -> float:
    """Piecewise-linear interpolation in log2(min_dim) (as ``NodeSpec.gemm_efficiency_at``)."""
    xs = [math.log2(d) for d, _ in points]
    ys = [e for _, e in points]
    return float(np.interp(math.log2(max(min_dim, 1e-9)), xs, ys))


def fit_gemm_curve(
    rows: Iterable[Mapping[str, Any]], overhead_s: float, dtype: str = "float32"
) -> GemmCurve:
    """Efficiency curve from GEMM rows ``{m, k, n, min_dim, flops, seconds, dtype}``.

    The rate of each shape is FLOPs / (seconds - overhead_s); a dimension's rate is the
    median over its shapes; the peak is the best rate among dimensions whose GEMMs take at
    least twice the call cost (the highest rate this library sustains here, not a datasheet
    figure), and each point's efficiency is its rate over that peak, at most 1. Time floors
    at 5% of the measured time so a tiny GEMM whose time is mostly overhead does not blow up.

    Raises:
        ValueError: no rows of ``dtype``.
    """
    by_dim: dict[int, list[float]] = defaultdict(list)
    time_by_dim: dict[int, list[float]] = defaultdict(list)
    kept = [r for r in rows if r.get("dtype", "float32") == dtype]
    if not kept:
        raise ValueError(f"fit_gemm_curve: no {dtype} GEMM measurements")
    for r in kept:
        t = float(r["seconds"])
        by_dim[int(r["min_dim"])].append(float(r["flops"]) / max(t - overhead_s, 0.05 * t))
        time_by_dim[int(r["min_dim"])].append(t)
    rates = {d: statistics.median(v) for d, v in sorted(by_dim.items())}
    # the peak from GEMMs long enough that the call cost is at most half their time
    solid = [rates[d] for d in rates if statistics.median(time_by_dim[d]) >= 2 * overhead_s]
    peak = max(solid or rates.values())
    points = [(d, min(1.0, max(rate / peak, 1e-4))) for d, rate in rates.items()]
    curve = GemmCurve(peak, points, 0.0)
    errs = [
        gemm_time_s(float(r["flops"]), min(r["m"], r["k"], r["n"]), curve, overhead_s)
        / float(r["seconds"]) - 1.0
        for r in kept
    ]
    return GemmCurve(peak, points, float(np.sqrt(np.mean(np.square(errs)))))


def best_rate(rows: Iterable[Mapping[str, Any]], dtype: str) -> float:
    """Highest FLOP/s among the GEMM rows of ``dtype`` (0 if none)."""
    rates = [float(r["flops"]) / float(r["seconds"]) for r in rows if r.get("dtype") == dtype]
    return max(rates, default=0.0)


def bandwidth_Bps_at(
    rows: Iterable[Mapping[str, Any]], array_bytes: float, kind: str = "alloc"
) -> float:
    """Bandwidth (bytes/s moved) of STREAM-like rows of ``kind`` at ``array_bytes`` per array,
    interpolated in log(size) - log(bandwidth), flat beyond the measured sizes.

    Raises:
        ValueError: no rows of ``kind``.
    """
    pts = sorted(
        (float(r["array_bytes"]), float(r["bytes"]) / float(r["seconds"]))
        for r in rows
        if r["kind"] == kind
    )
    if not pts:
        raise ValueError(f"bandwidth_Bps_at: no {kind!r} stream measurements")
    xs = np.log([p[0] for p in pts])
    ys = np.log([p[1] for p in pts])
    return float(np.exp(np.interp(math.log(array_bytes), xs, ys)))


def compute_share(seconds_at_cores: float, seconds_oversubscribed: float) -> float:
    """Fraction of its own core a process gets when oversubscribed: the time of the same
    GEMM with ranks = cores over its time with more ranks (0.5 at twice as many ranks if the
    cores are shared fairly)."""
    if seconds_at_cores <= 0 or seconds_oversubscribed <= 0:
        raise ValueError("compute_share: times must be positive")
    return seconds_at_cores / seconds_oversubscribed


# Simulated operations each timed kernel stands for (fugaku_sim.sim.compute's op lists):
# attention is scores GEMM + softmax + values GEMM; the cross-entropy fwd+bwd is two ops.
KERNEL_OPS = {"attention_fwd": 3, "attention_bwd": 3, "cross_entropy_fwd_bwd": 2}


def tiny_kernel_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Seconds per call of each kernel at its smallest measured shape."""
    best: dict[str, tuple[int, float]] = {}
    for r in rows:
        k, tokens = str(r["kernel"]), int(r["tokens"])
        if k not in best or tokens < best[k][0]:
            best[k] = (tokens, float(r["seconds"]))
    return {k: v[1] for k, v in best.items()}


def fit_kernel_overhead_s(rows: Iterable[Mapping[str, Any]], ops_per_block: int = 0) -> float:
    """Fixed cost of one simulated operation, from the trainer's kernels at a tiny shape
    (where arithmetic and traffic are negligible): the whole block's forward plus backward
    over the ``ops_per_block`` operations the simulator counts for them (the glue between
    kernels, bias adds, residuals and gradient accumulation included); without block rows,
    the median over the kernels of seconds per simulated op.

    Raises:
        ValueError: no kernel rows.
    """
    tiny = tiny_kernel_rows(rows)
    if not tiny:
        raise ValueError("fit_kernel_overhead_s: no kernel measurements")
    if ops_per_block > 0 and {"block_fwd", "block_bwd"} <= tiny.keys():
        return (tiny["block_fwd"] + tiny["block_bwd"]) / ops_per_block
    return statistics.median(t / KERNEL_OPS.get(k, 1) for k, t in tiny.items()
                             if not k.startswith("block_"))


# (seconds the model prices otherwise, e.g. GEMMs; bytes it prices at the bandwidth)
Modelled = Callable[[Mapping[str, Any]], "tuple[float, float] | None"]


# The trainer's units the bandwidth is fitted to: a whole transformer block each way and the
# LM head with its loss, where the kernels occur in the mix and with the glue a step has.
# The single kernels are timed for information (the sidecar shows how each fits).
FIT_KERNELS = frozenset({"block_fwd_bwd", "head_fwd_bwd"})


def combine_forward_backward(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Add a ``<unit>_fwd_bwd`` row for every shape at which both ``<unit>_fwd`` and
    ``<unit>_bwd`` were timed (their times summed): a training step always runs a block
    both ways, so that is the unit to fit."""
    copied = [dict(r) for r in rows]
    shape_keys = ("tokens", "B", "T", "C", "F", "V", "heads")
    by_key: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in copied:
        unit, _, direction = str(r["kernel"]).rpartition("_")
        if direction in ("fwd", "bwd") and unit and not unit.endswith("_fwd"):
            by_key[(unit,) + tuple(r.get(k) for k in shape_keys)][direction] = r
    out = list(copied)
    for key, pair in by_key.items():
        if {"fwd", "bwd"} <= pair.keys():
            out.append({**pair["fwd"], "kernel": f"{key[0]}_fwd_bwd",
                        "seconds": pair["fwd"]["seconds"] + pair["bwd"]["seconds"]})
    return out


def fit_effective_bw(
    rows: Iterable[Mapping[str, Any]], modelled: Modelled, kernels: frozenset[str] = FIT_KERNELS
) -> tuple[float, float]:
    """Bandwidth (bytes/s) at which the simulator's byte counts reproduce the trainer's
    units. For each working-shape row, ``modelled(row)`` gives (seconds the simulator
    prices otherwise, i.e. its GEMMs; bytes it prices at the bandwidth); the row's own
    tiny-shape time is its fixed cost: t = tiny + other + bytes / bw. Least squares on the
    relative error, every row weighing alike. Returns (bw, rms relative error).

    Only rows of ``kernels`` with a simulated counterpart (``modelled`` not None) count;
    without any, every kernel row does.

    Raises:
        ValueError: no usable rows.
    """
    rows = list(rows)
    tiny = tiny_kernel_rows(rows)
    smallest = {k: min(int(q["tokens"]) for q in rows if q["kernel"] == k) for k in tiny}
    if not any(r["kernel"] in kernels for r in rows):
        kernels = frozenset(tiny) - {"cross_entropy_fwd"}  # inside the fwd+bwd row
    xs, ys = [], []
    for r in rows:
        kernel = str(r["kernel"])
        if kernel not in kernels or int(r["tokens"]) == smallest.get(kernel):
            continue
        if (m := modelled(r)) is None:
            continue
        other_s, nbytes = m
        seconds = float(r["seconds"])
        xs.append(nbytes / seconds)
        ys.append((seconds - tiny[kernel] - other_s) / seconds)
    if not xs:
        raise ValueError("fit_effective_bw: no working-shape kernel measurements")
    x, y = np.array(xs), np.array(ys)
    inv_bw = float(x @ y / (x @ x))
    if inv_bw <= 0:
        raise ValueError("fit_effective_bw: the kernels take less than the model's other costs")
    rms = float(np.sqrt(np.mean((x * inv_bw - y) ** 2)))
    return 1.0 / inv_bw, rms


def usable_points(points: Iterable[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The ``(elements, net seconds, measured seconds)`` points a per-element fit can use:
    some elements and a positive time (a difference of two noisy timings can come out
    negative, and then says nothing about the cost)."""
    return [(e, y, t) for e, y, t in points if e > 0 and t > 0]


def fit_seconds_per_element(points: Iterable[tuple[float, float, float]]) -> float:
    """Seconds per element of ``t = fixed + other + elements x cost`` from points
    ``(elements, seconds net of the fixed and other costs, measured seconds)``: least squares
    through the origin on the relative error (every point weighs alike). A cost that comes
    out non-positive (the other costs explain the whole time) is returned as 0.

    Raises:
        ValueError: no points.
    """
    pts = [(e / t, y / t) for e, y, t in usable_points(points)]
    if not pts:
        raise ValueError("fit_seconds_per_element: no working-shape measurements")
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return max(float(x @ y / (x @ x)), 0.0)


def median_by_bytes(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per message size: the median ``seconds`` over the rows of that size (other
    keys from the first). Used for the oversubscribed all-reduce between compute phases,
    whose cost per size swings with whether the partner happens to be running when a rank
    arrives: the median over the compute lengths is the typical cost, where a
    relative-error fit to every row is pulled down to the luckiest one."""
    by: dict[float, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by[float(r["bytes"])].append(r)
    return [{**group[0], "seconds": statistics.median(float(r["seconds"]) for r in group)}
            for _, group in sorted(by.items())]
