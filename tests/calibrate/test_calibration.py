"""Synthetic measurements of known figures -> the fit gives those figures back."""

from __future__ import annotations

import pytest

from fugaku_sim.calibrate.calibration import fit_calibration
from fugaku_sim.errors import UserError
from tests.calibrate.measurements import (
    BUSY_BW,
    BUSY_LAT_S,
    BW,
    CALL_S,
    EFF,
    EFFECTIVE_BW,
    LAT_S,
    OPTIMIZER_S,
    OVER_BW,
    OVER_LAT_S,
    OVERHEAD_S,
    PEAK,
    synthetic_measurements,
)


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
    assert cal.between_compute_link is not None
    assert cal.between_compute_link.latency_s == pytest.approx(BUSY_LAT_S, rel=1e-6)
    assert cal.between_compute_link.bw_Bps == pytest.approx(BUSY_BW, rel=1e-6)
    for kind, cost in OPTIMIZER_S.items():  # net of the smallest size (64 parameters)
        assert cal.elementwise_s_per_element[f"optimizer_{kind}"] == pytest.approx(cost, rel=1e-3)
    assert cal.fp64_flops == pytest.approx(30e9)


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
    assert cal.op_overhead_method.startswith("median tiny numpy call")


def test_overhead_method_names_what_it_was_fitted_to() -> None:
    """Without the whole block's rows the per-op overhead is the median over the kernels,
    and the method says so."""
    raw = synthetic_measurements()
    raw["compute"]["kernels"] = [r for r in raw["compute"]["kernels"]
                                 if not r["kernel"].startswith("block_")]
    cal = fit_calibration(raw)
    assert cal.op_overhead_method.startswith("median per simulated op")


def _with_lone_loops(raw: dict, ratio: float) -> dict:
    """Every compute row also timed alone, ``ratio`` x faster (interleaved lone rounds)."""
    for rows in raw["compute"].values():
        if isinstance(rows, list):
            for r in rows:
                r["lone_seconds"] = r["seconds"] / ratio
    return raw


def test_a_lone_process_from_the_interleaved_lone_loops() -> None:
    cal = fit_calibration(_with_lone_loops(synthetic_measurements(), 1.25))
    assert cal.lone is not None
    assert cal.lone["peak_ratio"] == pytest.approx(1.25, rel=1e-9)
    assert cal.lone["mem_bw_ratio"] == pytest.approx(1.25, rel=1e-6)
    assert cal.lone["op_overhead_s"] == pytest.approx(OVERHEAD_S / 1.25, rel=1e-6)


def test_no_lone_figures_without_lone_loops() -> None:
    assert fit_calibration(synthetic_measurements()).lone is None


def test_an_older_sidecars_separate_lone_suite_still_reads() -> None:
    raw = synthetic_measurements()
    lone = _with_lone_loops(synthetic_measurements(), 0.8)["compute"]
    raw["compute_lone"] = {k: ([{**r, "seconds": r["lone_seconds"]} for r in v]
                               if isinstance(v, list) else v) for k, v in lone.items()}
    cal = fit_calibration(raw)
    assert cal.lone is not None and cal.lone["peak_ratio"] == pytest.approx(0.8, rel=1e-9)


def test_the_lone_gemm_ratio_is_a_median_over_solid_shapes() -> None:
    from fugaku_sim.calibrate.calibration import lone_gemm_ratio

    def row(m: int, seconds: float) -> dict:
        return {"m": m, "k": m, "n": m, "seconds": seconds}

    busy = [row(8, 1e-6), row(64, 1e-4), row(128, 1e-3), row(256, 1e-2)]
    # the tiny GEMM (under twice the call cost) and one disturbed shape do not decide it
    lone = [row(8, 1e-7), row(64, 0.5e-4), row(128, 1e-3 / 1.1), row(256, 1e-2 / 1.1)]
    assert lone_gemm_ratio(busy, lone, call_s=1e-6) == pytest.approx(1.1)
    with pytest.raises(ValueError, match="both"):
        lone_gemm_ratio(busy, [row(512, 1.0)], call_s=1e-6)


def test_lone_ratios_are_medians_of_the_rows_own_ratios() -> None:
    """One disturbed kernel row does not move the lone process's bandwidth or overhead (a
    ratio of two separately fitted figures did: 0.85 to 1.38 on one quiet machine)."""
    raw = _with_lone_loops(synthetic_measurements(), 1.1)
    kernels = raw["compute"]["kernels"]
    working = [r for r in kernels if int(r.get("tokens", 0)) > 8]
    working[0]["lone_seconds"] = working[0]["seconds"] / 3.0
    tiny = [r for r in kernels if int(r.get("tokens", 0)) <= 8]
    tiny[0]["lone_seconds"] = tiny[0]["seconds"] * 4.0
    cal = fit_calibration(raw)
    assert cal.lone is not None
    assert cal.lone["mem_bw_ratio"] == pytest.approx(1.1)
    assert cal.lone["op_overhead_s"] == pytest.approx(cal.op_overhead_s / 1.1)


def test_the_oversubscribed_share_from_the_interleaved_trials() -> None:
    raw = synthetic_measurements()
    over = raw["share"][-1]["share"]
    over.update(interleaved_all_busy_seconds=3e-3, half_asleep_seconds=1.2e-3)
    assert fit_calibration(raw).oversubscribed_share == pytest.approx(0.4)
    del over["half_asleep_seconds"]  # an older sidecar: the two jobs' all-busy times
    assert fit_calibration(raw).oversubscribed_share == pytest.approx(0.5)
