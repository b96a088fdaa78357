"""Fitted figures -> a calibrated ClusterSpec; the shipped calibrated profile is what its
recorded measurements give."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.calibrate.calibration import fit_calibration
from fugaku_sim.calibrate.profile import calibrated_cluster
from fugaku_sim.calibrate.record import occupancy, sidecar_path
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object
from fugaku_sim.spec import load_cluster
from tests.calibrate.measurements import (
    BUSY_BW,
    BUSY_LAT_S,
    BW,
    EFFECTIVE_BW,
    OVERHEAD_S,
    PEAK,
    synthetic_measurements,
)


def test_profile_scales_per_process_figures_to_the_node(tmp_path: Path) -> None:
    cal = fit_calibration(synthetic_measurements(ranks=2))
    spec = calibrated_cluster(load_cluster("local"), "t-cal", cal, 2.5, 16.0)
    node = spec.node
    assert node.processes_per_node == 2 and node.cores == 2
    assert node.peak_TFLOPs.fp32 == pytest.approx(2 * PEAK / 1e12, rel=1e-3)
    assert node.mem_bw_GBps == pytest.approx(2 * EFFECTIVE_BW / 1e9, rel=1e-3)
    assert node.op_overhead_us == pytest.approx(OVERHEAD_S * 1e6, rel=1e-3)
    assert node.gemm_efficiency_at(64) == pytest.approx(0.8, rel=1e-3)
    # the link between compute phases (a slower peer waited for), not the tight loop's
    assert spec.interconnect.intra_node.bw_GBps == pytest.approx(BUSY_BW / 1e9, rel=1e-3)  # type: ignore[union-attr]
    assert spec.interconnect.intra_node.latency_us == pytest.approx(BUSY_LAT_S * 1e6, rel=1e-3)  # type: ignore[union-attr]
    raw = synthetic_measurements(ranks=2)
    del raw["comm"][0]["sync_after_compute"]  # not measured: the tight loop's fit
    tight = calibrated_cluster(load_cluster("local"), "t", fit_calibration(raw), None, None)
    assert tight.interconnect.intra_node.bw_GBps == pytest.approx(BW / 1e9, rel=1e-3)  # type: ignore[union-attr]
    # waits that do not grow with the message (noise over the per-byte cost): no link to
    # fit between compute phases, the tight loop's instead (was: calibrate failed, exit 2)
    raw = synthetic_measurements(ranks=2)
    for r in raw["comm"][0]["sync_after_compute"]:
        r["seconds"] = 1e-3 / (1.0 + r["bytes"] / 1e6)
    noisy = calibrated_cluster(load_cluster("local"), "t", fit_calibration(raw), None, None)
    assert noisy.interconnect.intra_node.bw_GBps == pytest.approx(BW / 1e9, rel=1e-3)  # type: ignore[union-attr]
    assert (node.clock_GHz, node.mem_GiB) == (2.5, 16.0)
    assert node.power_W == load_cluster("local").node.power_W  # kept from the base


def test_torus_base_is_refused() -> None:
    cal = fit_calibration(synthetic_measurements())
    with pytest.raises(UserError, match="switched"):
        calibrated_cluster(load_cluster("fugaku"), "x", cal, None, None)


def test_shipped_calibrated_profile_is_what_its_measurements_give(repo: Path) -> None:
    """``clusters/local-calibrated.yaml`` (the workflow's default cluster) refitted from the
    raw rows in its sidecar: every fitted figure, and the occupancy section, come out as
    committed. Fails when the profile is missing, when its sidecar is, or when the fit (or
    the simulator's op counts it is fitted through) changed without recalibrating."""
    path = repo / "clusters" / "local-calibrated.yaml"
    shipped = load_cluster(str(path))
    sidecar = read_json_object(sidecar_path(path), "sidecar")
    cal = fit_calibration(sidecar["measurements"], sidecar["fit"]["mem_array_bytes"])
    assert "kept from local:" in path.read_text(encoding="utf-8")  # the header names its base
    node = shipped.node  # clock, memory and cores come from the machine, not from the fit
    refit = calibrated_cluster(load_cluster("local"), shipped.name, cal, node.clock_GHz,
                               node.mem_GiB, node.cores)
    assert refit == shipped
    assert occupancy(cal) == sidecar["occupancy"]
