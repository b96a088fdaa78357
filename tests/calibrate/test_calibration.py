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
