"""The fitting functions recover known parameters from synthetic measurements."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fugaku_sim.calibrate.bench import MESSAGE_BYTES, gemm_shapes
from fugaku_sim.calibrate.fit import (
    GemmCurve,
    bandwidth_Bps_at,
    compute_share,
    efficiency_at,
    fit_alpha_beta,
    fit_gemm_curve,
    fit_op_overhead_s,
    gemm_time_s,
    p2p_factors,
    ring_allreduce_factors,
)

LATENCY_S = 2.5e-6
BW_BPS = 7.0e9


def _noisy(value: float, rng: np.random.Generator, rel: float) -> float:
    return value * (1.0 + rel * rng.standard_normal())


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_alpha_beta_recovers_ping_pong(noise: float) -> None:
    rng = np.random.default_rng(1)
    rows = [{"bytes": b, "seconds": _noisy(LATENCY_S + b / BW_BPS, rng, noise)}
            for b in MESSAGE_BYTES]
    fit = fit_alpha_beta(rows, p2p_factors)
    tol = 1e-9 if noise == 0 else 0.1
    assert fit.latency_s == pytest.approx(LATENCY_S, rel=tol)
    assert fit.bw_Bps == pytest.approx(BW_BPS, rel=tol)
    assert fit.points == len(MESSAGE_BYTES)
    assert fit.rms_rel_error <= 3 * noise + 1e-9


def test_alpha_beta_ring_over_rank_counts() -> None:
    rows = []
    for n in (2, 4, 8):
        a, b = ring_allreduce_factors(n)
        rows += [{"bytes": m, "ranks": n, "seconds": a * LATENCY_S + b * m / BW_BPS}
                 for m in MESSAGE_BYTES]
    fit = fit_alpha_beta(rows, ring_allreduce_factors)
    assert fit.latency_s == pytest.approx(LATENCY_S, rel=1e-9)
    assert fit.bw_Bps == pytest.approx(BW_BPS, rel=1e-9)


def test_ring_factors_follow_the_formula() -> None:
    assert ring_allreduce_factors(1) == (0.0, 0.0)
    assert ring_allreduce_factors(4) == (6.0, 1.5)


def test_alpha_beta_clamps_negative_latency() -> None:
    # pure bandwidth with a small downward bias at small sizes: latency would come out < 0
    rows = [{"bytes": b, "seconds": b / BW_BPS * (0.9 if b < 1000 else 1.0)}
            for b in MESSAGE_BYTES]
    fit = fit_alpha_beta(rows)
    assert fit.latency_s == 0.0
    assert fit.bw_Bps == pytest.approx(BW_BPS, rel=0.1)


def test_alpha_beta_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="at least two"):
        fit_alpha_beta([{"bytes": 8, "seconds": 1e-6}])


def test_gemm_curve_recovers_peak_efficiency_and_overhead() -> None:
    true = GemmCurve(100e9, [(8, 0.1), (64, 0.6), (512, 0.9), (1024, 1.0)], 0.0)
    overhead = 1.5e-6
    rows = []
    for d in (8, 64, 512, 1024):
        for m, k, n in gemm_shapes(d):
            flops = 2.0 * m * k * n
            rows.append({"m": m, "k": k, "n": n, "min_dim": d, "flops": flops,
                         "dtype": "float32", "seconds": gemm_time_s(flops, d, true, overhead)})
    rows.append({"m": 4, "k": 4, "n": 4, "min_dim": 4, "flops": 128.0, "dtype": "float64",
                 "seconds": 1.0})  # other precisions are ignored
    fit = fit_gemm_curve(rows, overhead)
    assert fit.peak_flops == pytest.approx(100e9, rel=1e-9)
    for (d, e), (d0, e0) in zip(fit.points, true.points):
        assert d == d0
        assert e == pytest.approx(e0, rel=1e-9)
    assert fit.rms_rel_error < 1e-9


def test_gemm_curve_peak_is_best_rate_and_efficiency_at_most_one() -> None:
    rows = [{"m": d, "k": d, "n": d, "min_dim": d, "flops": 2.0 * d**3, "dtype": "float32",
             "seconds": 2.0 * d**3 / r} for d, r in ((16, 5e9), (64, 40e9), (256, 30e9))]
    fit = fit_gemm_curve(rows, 0.0)
    assert fit.peak_flops == pytest.approx(40e9)
    assert max(e for _, e in fit.points) == 1.0
    assert dict(fit.points)[256] == pytest.approx(0.75)


def test_gemm_curve_needs_rows() -> None:
    with pytest.raises(ValueError, match="float32"):
        fit_gemm_curve([], 0.0)


def test_efficiency_interpolates_in_log2_and_is_flat_outside() -> None:
    pts = [(16, 0.2), (256, 0.6)]
    assert efficiency_at(pts, 4) == 0.2
    assert efficiency_at(pts, 64) == pytest.approx(0.4)
    assert efficiency_at(pts, 4096) == 0.6


def test_efficiency_matches_the_spec_interpolation() -> None:
    from fugaku_sim.spec.cluster import GemmPoint, NodeSpec

    pts = [(16, 0.2), (64, 0.5), (1024, 0.9)]
    node = NodeSpec(cores=1, clock_GHz=1, mem_GiB=1, mem_bw_GBps=1, op_overhead_us=0,
                    power_W=1, peak_TFLOPs={"fp64": 1, "fp32": 1, "fp16": 1, "bf16": 1},
                    gemm_efficiency=[GemmPoint(min_dim=d, efficiency=e) for d, e in pts])
    for d in (8, 16, 20, 64, 100, 1024, 5000):
        assert efficiency_at(pts, d) == pytest.approx(node.gemm_efficiency_at(d))


def test_op_overhead_is_the_median() -> None:
    rows = [{"op": "a", "seconds": 1e-6}, {"op": "b", "seconds": 3e-6},
            {"op": "c", "seconds": 100e-6}]
    assert fit_op_overhead_s(rows) == 3e-6
    with pytest.raises(ValueError):
        fit_op_overhead_s([])


def test_bandwidth_interpolates_log_log() -> None:
    rows = [{"kind": "alloc", "array_bytes": s, "bytes": 3 * s, "seconds": 3 * s / bw}
            for s, bw in ((1e3, 10e9), (1e5, 40e9))]
    rows.append({"kind": "inplace", "array_bytes": 1e4, "bytes": 3e4, "seconds": 1.0})
    assert bandwidth_Bps_at(rows, 1e3) == pytest.approx(10e9)
    assert bandwidth_Bps_at(rows, 1e4) == pytest.approx(math.sqrt(10e9 * 40e9))
    assert bandwidth_Bps_at(rows, 1e9) == pytest.approx(40e9)
    with pytest.raises(ValueError):
        bandwidth_Bps_at(rows, 1e4, kind="nope")


def test_compute_share() -> None:
    assert compute_share(1.0, 2.0) == 0.5
    with pytest.raises(ValueError):
        compute_share(0.0, 1.0)


def test_kernel_overhead_from_the_whole_block() -> None:
    from fugaku_sim.calibrate.fit import fit_kernel_overhead_s

    rows = [{"kernel": "block_fwd", "tokens": 8, "seconds": 100e-6},
            {"kernel": "block_bwd", "tokens": 8, "seconds": 140e-6},
            {"kernel": "gelu_fwd", "tokens": 8, "seconds": 4e-6},
            {"kernel": "gelu_fwd", "tokens": 1024, "seconds": 400e-6},
            {"kernel": "attention_fwd", "tokens": 8, "seconds": 30e-6}]
    assert fit_kernel_overhead_s(rows, ops_per_block=24) == pytest.approx(10e-6)
    # without the block: the median of seconds per simulated op (attention is three)
    assert fit_kernel_overhead_s(rows[2:]) == pytest.approx(7e-6)


def test_gemm_peak_ignores_overhead_dominated_shapes() -> None:
    # a tiny GEMM whose time is nearly all call cost must not set the peak
    rows = [{"m": 8, "k": 8, "n": 8, "min_dim": 8, "flops": 1024.0, "dtype": "float32",
             "seconds": 1.05e-6},
            {"m": 256, "k": 256, "n": 256, "min_dim": 256, "flops": 2.0 * 256**3,
             "dtype": "float32", "seconds": 1e-6 + 2.0 * 256**3 / 50e9}]
    fit = fit_gemm_curve(rows, 1e-6)
    assert fit.peak_flops == pytest.approx(50e9)
    assert 0 < dict(fit.points)[8] <= 1.0


def test_combine_forward_backward() -> None:
    from fugaku_sim.calibrate.fit import combine_forward_backward

    rows = [{"kernel": "block_fwd", "tokens": 64, "C": 32, "seconds": 1.0},
            {"kernel": "block_bwd", "tokens": 64, "C": 32, "seconds": 2.0},
            {"kernel": "block_fwd", "tokens": 128, "C": 32, "seconds": 5.0},
            {"kernel": "cross_entropy_fwd", "tokens": 64, "seconds": 1.0},
            {"kernel": "cross_entropy_fwd_bwd", "tokens": 64, "seconds": 1.5}]
    out = combine_forward_backward(rows)
    added = out[len(rows):]
    assert added == [{"kernel": "block_fwd_bwd", "tokens": 64, "C": 32, "seconds": 3.0}]


def test_seconds_per_element_and_median_by_bytes() -> None:
    from fugaku_sim.calibrate.fit import fit_seconds_per_element, median_by_bytes

    pts = [(e, e * 2e-9, e * 2e-9 + 1e-5) for e in (1e4, 1e5, 1e6)]
    assert fit_seconds_per_element(pts) == pytest.approx(2e-9)
    assert fit_seconds_per_element([(1e4, -1e-6, 1e-5)]) == 0.0
    with pytest.raises(ValueError):
        fit_seconds_per_element([])
    rows = [{"bytes": 8.0, "seconds": s} for s in (1.0, 5.0, 2.0)]
    rows.append({"bytes": 64.0, "seconds": 3.0})
    assert [(r["bytes"], r["seconds"]) for r in median_by_bytes(rows)] == [(8.0, 2.0),
                                                                          (64.0, 3.0)]
