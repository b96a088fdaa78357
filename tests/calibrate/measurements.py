"""Synthetic raw measurements of known figures, in the form the benchmark suites write."""

from __future__ import annotations

from typing import Any

from fugaku_sim.calibrate.bench import (
    MESSAGE_BYTES,
    MODEL_PHASES,
    MODEL_SHAPES,
    STREAM_WORDS,
    gemm_shapes,
)
from fugaku_sim.calibrate.fit import GemmCurve, ring_allreduce_factors
from fugaku_sim.calibrate.kernels import kernel_ops, simulated_kernel_cost

PEAK = 80e9  # FLOP/s per process
EFF = {16: 0.5, 64: 0.8, 256: 1.0}
CALL_S = 1e-6  # numpy matmul call
OVERHEAD_S = 10e-6  # per simulated op
EFFECTIVE_BW = 5e9  # bytes/s per process as the simulator counts bytes
LAT_S, BW = 3e-6, 4e9
CURVE = GemmCurve(PEAK, sorted(EFF.items()), 0.0)
OVER_LAT_S, OVER_BW = 150e-6, 1e9
BUSY_LAT_S, BUSY_BW = 20e-6, 2e9  # pairs between compute phases, one rank per core
OPTIMIZER_S = {"adamw": 9e-9, "sgd": 4e-9}  # seconds per parameter


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
    for b, t, c, heads, v, layers in MODEL_SHAPES:
        shape = {"tokens": b * t, "B": b, "T": t, "C": c, "heads": heads, "V": v,
                 "layers": layers}
        for kernel in MODEL_PHASES:
            row = {"kernel": kernel, **shape}
            gemm_s, nbytes = simulated_kernel_cost(row, CURVE) if t > 8 else (0.0, 0.0)
            ops = len(kernel_ops(row) or [])  # simulated ops the part of the pass runs
            row["seconds"] = ops * OVERHEAD_S + gemm_s + nbytes / EFFECTIVE_BW
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
    for entry, lat, bw in ((comm[0], BUSY_LAT_S, BUSY_BW), (comm[-1], OVER_LAT_S, OVER_BW)):
        entry["sync_after_compute"] = [  # pairs between compute phases
            {"bytes": m, "ranks": 2, "block_passes": c, "seconds": 2 * lat + m / bw}
            for m in (8.0, 32768.0, 262144.0) for c in (1, 4)]
    optimizer = [{"optimizer": kind, "params": n, "seconds": 20 * OVERHEAD_S + n * cost}
                 for kind, cost in OPTIMIZER_S.items() for n in (64, 2**17, 2**20)]
    share = [{"ranks": n, "share": {"all_busy_seconds": 1e-3 * n / ranks,
                                    "half_busy_seconds": 1e-3 * n / ranks}}
             for n in (ranks, 2 * ranks)]
    return {"ranks": ranks, "quick": False,
            "compute": {"gemm": gemm, "stream": stream, "tiny_ops": tiny,
                        "kernels": _kernel_rows(), "optimizer": optimizer,
                        "mpi_library": "MPICH test"},
            "share": share, "comm": comm}
