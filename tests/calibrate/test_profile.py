"""Synthetic measurements -> calibrated ClusterSpec: known figures recovered, the YAML is a
valid profile that round-trips, and the provenance sidecar holds the raw rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fugaku_sim.calibrate.bench import (
    BLOCK_SHAPES,
    HEAD_SHAPES,
    MESSAGE_BYTES,
    STREAM_WORDS,
    gemm_shapes,
)
from fugaku_sim.calibrate.fit import GemmCurve, ring_allreduce_factors
from fugaku_sim.calibrate.profile import (
    calibrated_cluster,
    fit_calibration,
    sidecar_path,
    simulated_kernel_cost,
    write_profile,
)
from fugaku_sim.calibrate.provenance import provenance
from fugaku_sim.errors import UserError
from fugaku_sim.spec import load_cluster
from fugaku_sim.spec.load import dump_yaml

PEAK = 80e9  # FLOP/s per process
EFF = {16: 0.5, 64: 0.8, 256: 1.0}
CALL_S = 1e-6  # numpy matmul call
OVERHEAD_S = 10e-6  # per simulated op
EFFECTIVE_BW = 5e9  # bytes/s per process as the simulator counts bytes
LAT_S, BW = 3e-6, 4e9
CURVE = GemmCurve(PEAK, sorted(EFF.items()), 0.0)
OVER_LAT_S, OVER_BW = 150e-6, 1e9


def _kernel_rows() -> list[dict[str, Any]]:
    rows = []
    for tokens, c in ((8, 8), (1024, 64), (1024, 256)):
        shape = {"tokens": tokens, "C": c, "F": 4 * c, "V": 4096 if tokens > 8 else 32}
        for kernel in ("layernorm_fwd", "layernorm_bwd", "gelu_fwd", "gelu_bwd",
                       "cross_entropy_fwd", "cross_entropy_fwd_bwd"):
            row = {"kernel": kernel, **shape}
            ops = 2 if kernel == "cross_entropy_fwd_bwd" else 1
            gemm_s, nbytes = simulated_kernel_cost(row, CURVE) if tokens > 8 else (0.0, 0.0)
            row["seconds"] = ops * OVERHEAD_S + gemm_s + nbytes / EFFECTIVE_BW
            rows.append(row)
    for b, t, c, heads in ((1, 8, 8, 2), (4, 64, 64, 4), (4, 256, 128, 4)):
        for kernel in ("attention_fwd", "attention_bwd"):
            row = {"kernel": kernel, "tokens": b * t, "B": b, "T": t, "C": c, "heads": heads}
            gemm_s, nbytes = simulated_kernel_cost(row, CURVE) if t > 8 else (0.0, 0.0)
            row["seconds"] = 3 * OVERHEAD_S + gemm_s + nbytes / EFFECTIVE_BW
            rows.append(row)
    for b, t, c, heads in BLOCK_SHAPES:
        for kernel in ("block_fwd", "block_bwd"):
            row = {"kernel": kernel, "tokens": b * t, "B": b, "T": t, "C": c, "heads": heads}
            gemm_s, nbytes = simulated_kernel_cost(row, CURVE) if t > 8 else (0.0, 0.0)
            row["seconds"] = 12 * OVERHEAD_S + gemm_s + nbytes / EFFECTIVE_BW
            rows.append(row)
    for tokens, c, v in HEAD_SHAPES:
        row = {"kernel": "head_fwd_bwd", "tokens": tokens, "C": c, "V": v}
        gemm_s, nbytes = simulated_kernel_cost(row, CURVE) if tokens > 8 else (0.0, 0.0)
        row["seconds"] = 6 * OVERHEAD_S + gemm_s + nbytes / EFFECTIVE_BW
        rows.append(row)
    return rows


def synthetic_measurements(ranks: int = 2) -> dict[str, Any]:
    gemm = []
    for d, e in EFF.items():
        for m, k, n in gemm_shapes(d):
            f = 2.0 * m * k * n
            gemm.append({"m": m, "k": k, "n": n, "min_dim": d, "dtype": "float32",
                         "flops": f, "seconds": CALL_S + f / (PEAK * e)})
    gemm.append({"m": 512, "k": 512, "n": 512, "min_dim": 512, "dtype": "float64",
                 "flops": 2.0 * 512**3, "seconds": 2.0 * 512**3 / 30e9})
    stream = [{"kind": kind, "bytes": 12.0 * w, "array_bytes": 4.0 * w,
               "seconds": 12.0 * w / 40e9} for w in STREAM_WORDS for kind in ("inplace", "alloc")]
    tiny = [{"op": "matmul_8", "seconds": CALL_S}, {"op": "add_new", "seconds": 0.3e-6}]
    comm = []
    for n in (ranks, 2 * ranks):
        a, b = ring_allreduce_factors(n)
        comm.append({"ranks": n,
                     "pingpong": [{"bytes": m, "seconds": LAT_S + m / BW} for m in MESSAGE_BYTES],
                     "allreduce": [{"bytes": m, "ranks": n, "seconds": a * LAT_S + b * m / BW}
                                   for m in MESSAGE_BYTES]})
    comm[-1]["sync_after_compute"] = [  # pairs between compute phases, 2 x ranks
        {"bytes": m, "ranks": 2, "gemm_calls": c, "seconds": 2 * OVER_LAT_S + m / OVER_BW}
        for m in (8.0, 32768.0, 262144.0) for c in (1, 4)]
    share = [{"ranks": n, "share": {"all_busy_seconds": 1e-3 * n / ranks,
                                    "half_busy_seconds": 1e-3 * n / ranks}}
             for n in (ranks, 2 * ranks)]
    return {"ranks": ranks, "quick": False,
            "compute": {"gemm": gemm, "stream": stream, "tiny_ops": tiny,
                        "kernels": _kernel_rows(), "mpi_library": "MPICH test"},
            "share": share, "comm": comm}


def test_fit_recovers_every_figure() -> None:
    cal = fit_calibration(synthetic_measurements())
    assert cal.gemm.peak_flops == pytest.approx(PEAK, rel=1e-6)
    assert dict(cal.gemm.points) == pytest.approx(EFF, rel=1e-6)
    assert cal.gemm_call_overhead_s == CALL_S
    assert cal.op_overhead_s == pytest.approx(OVERHEAD_S, rel=1e-6)
    assert "block" in cal.op_overhead_method
    assert cal.mem_bw_Bps == pytest.approx(EFFECTIVE_BW, rel=1e-6)
    assert "block (fwd+bwd) and head" in cal.mem_bw_method
    assert cal.mem_bw_rms_rel_error == pytest.approx(0.0, abs=1e-9)
    assert cal.stream_bw_Bps == pytest.approx(40e9, rel=1e-6)
    assert cal.allreduce.latency_s == pytest.approx(LAT_S, rel=1e-6)
    assert cal.allreduce.bw_Bps == pytest.approx(BW, rel=1e-6)
    assert cal.p2p.bw_Bps == pytest.approx(BW, rel=1e-6)
    assert cal.oversubscribed_share == pytest.approx(0.5)
    assert cal.oversubscribed_link is not None
    assert cal.oversubscribed_link.latency_s == pytest.approx(OVER_LAT_S, rel=1e-6)
    assert cal.oversubscribed_link.bw_Bps == pytest.approx(OVER_BW, rel=1e-6)
    assert cal.fp64_flops == pytest.approx(30e9)


def test_profile_scales_per_process_figures_to_the_node(tmp_path: Path) -> None:
    cal = fit_calibration(synthetic_measurements(ranks=2))
    spec = calibrated_cluster(load_cluster("local"), "t-cal", cal, 2.5, 16.0)
    node = spec.node
    assert node.processes_per_node == 2 and node.cores == 2
    assert node.peak_TFLOPs.fp32 == pytest.approx(2 * PEAK / 1e12, rel=1e-3)
    assert node.mem_bw_GBps == pytest.approx(2 * EFFECTIVE_BW / 1e9, rel=1e-3)
    assert node.op_overhead_us == pytest.approx(OVERHEAD_S * 1e6, rel=1e-3)
    assert node.gemm_efficiency_at(64) == pytest.approx(0.8, rel=1e-3)
    assert spec.interconnect.intra_node.bw_GBps == pytest.approx(BW / 1e9, rel=1e-3)  # type: ignore[union-attr]
    assert (node.clock_GHz, node.mem_GiB) == (2.5, 16.0)
    assert node.power_W == load_cluster("local").node.power_W  # kept from the base


def test_written_yaml_is_a_valid_profile_that_round_trips(tmp_path: Path) -> None:
    raw = synthetic_measurements()
    cal = fit_calibration(raw)
    spec = calibrated_cluster(load_cluster("local"), "t-cal", cal, None, None)
    out = tmp_path / "clusters" / "t-cal.yaml"
    prov = {**provenance(["fugaku-sim", "calibrate"]), "load_average_end": [0.1, 0.1, 0.1]}
    sidecar = write_profile(spec, cal, prov, raw, out, "local")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Calibrated by `fugaku-sim calibrate`")
    assert sidecar == sidecar_path(out) and sidecar.name == "t-cal.measurements.json"
    assert sidecar.name in text
    loaded = load_cluster(str(out))
    assert loaded == spec
    assert yaml.safe_load(dump_yaml(loaded)) == yaml.safe_load(text)
    payload = json.loads(sidecar.read_text(encoding="utf-8"))
    assert payload["measurements"]["comm"] == raw["comm"]
    assert payload["provenance"]["command"] == "fugaku-sim calibrate"
    assert {"date_utc", "host", "cpu_model", "numpy", "blas"} <= payload["provenance"].keys()
    assert not list(tmp_path.glob("clusters/.*tmp*"))  # no temporaries left


def test_torus_base_is_refused() -> None:
    cal = fit_calibration(synthetic_measurements())
    with pytest.raises(UserError, match="switched"):
        calibrated_cluster(load_cluster("fugaku"), "x", cal, None, None)


def test_missing_suite_is_one_line_error() -> None:
    raw = synthetic_measurements()
    del raw["comm"]
    with pytest.raises(UserError, match="cannot fit"):
        fit_calibration(raw)


def test_fallbacks_without_the_trainer_kernels() -> None:
    raw = synthetic_measurements()
    raw["compute"]["kernels"] = []
    cal = fit_calibration(raw, array_bytes=4 * 2**20)
    assert cal.mem_bw_Bps == pytest.approx(40e9)
    assert "STREAM" in cal.mem_bw_method
    assert cal.op_overhead_s == pytest.approx((CALL_S + 0.3e-6) / 2)


def test_shipped_calibrated_profile_loads(repo: Path) -> None:
    path = repo / "clusters" / "local-calibrated.yaml"
    if not path.exists():
        pytest.skip("no calibrated profile committed yet")
    spec = load_cluster(str(path))
    assert spec.name == "local-calibrated"
    assert sidecar_path(path).is_file()


def test_elementwise_costs_recover_per_kind_costs() -> None:
    """Kernel rows built from known per-element costs give those costs back, the residual
    (glue) from the whole blocks, and the block check is exact."""
    from fugaku_sim.calibrate.profile import _head_ops, _unit_ops, elementwise_costs

    true = {"layernorm_fwd": 1e-9, "layernorm_bwd": 2e-9, "gelu_fwd": 3e-9, "gelu_bwd": 4e-9,
            "cross_entropy_fwd": 0.5e-9, "cross_entropy_bwd": 0.25e-9, "softmax_fwd": 1.5e-9,
            "softmax_bwd": 1e-9, "residual_fwd": 2.5e-9, "residual_bwd": 3e-9}
    fixed = 20e-6

    def cost(ops: list[Any]) -> float:
        gemm = sum(op.flops / PEAK for op in ops if op.min_dim)  # efficiency 1
        return gemm + sum(op.elements * true[op.rate_key] for op in ops if op.kind)

    rows: list[dict[str, Any]] = []
    for tokens, c, v in ((8, 8, 32), (1024, 64, 4096), (512, 256, 4096)):
        big = tokens > 8
        for kind, dim in (("layernorm", c), ("gelu", 4 * c)):
            for d in ("fwd", "bwd"):
                rows.append({"kernel": f"{kind}_{d}", "tokens": tokens, "C": c, "F": 4 * c,
                             "V": v, "seconds": fixed + big * tokens * dim * true[f"{kind}_{d}"]})
        ce_f = big * tokens * v * true["cross_entropy_fwd"]
        rows.append({"kernel": "cross_entropy_fwd", "tokens": tokens, "C": c, "F": 4 * c,
                     "V": v, "seconds": fixed + ce_f})
        rows.append({"kernel": "cross_entropy_fwd_bwd", "tokens": tokens, "C": c, "F": 4 * c,
                     "V": v, "seconds": 2 * fixed + ce_f
                     + big * tokens * v * true["cross_entropy_bwd"]})
    for kernel, shapes in (("attention", ((1, 8, 8, 2), (4, 64, 64, 4))),
                           ("block", ((1, 8, 8, 2), (4, 64, 64, 4), (2, 128, 128, 4)))):
        for b, t, c, heads in shapes:
            for d in ("fwd", "bwd"):
                row = {"kernel": f"{kernel}_{d}", "tokens": b * t, "B": b, "T": t, "C": c,
                       "heads": heads}
                row["seconds"] = fixed + (cost(_unit_ops(row, d == "bwd")) if t > 8 else 0.0)
                rows.append(row)
    for tokens, c, v in ((8, 8, 32), (256, 64, 2048)):
        row = {"kernel": "head_fwd_bwd", "tokens": tokens, "C": c, "V": v}
        row["seconds"] = fixed + (cost(_head_ops(row)) if tokens > 8 else 0.0)
        rows.append(row)
    curve = GemmCurve(PEAK, [(1, 1.0)], 0.0)  # efficiency 1 at every size
    got, check = elementwise_costs(rows, curve, fixed / 12)  # 12 simulated ops a block
    assert got == pytest.approx(true, rel=1e-6)
    assert check["block_fwd"] < 1e-6 and check["block_bwd"] < 1e-6
    assert elementwise_costs([], curve, 0.0) == ({}, {})
