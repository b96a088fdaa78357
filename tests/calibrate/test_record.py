"""The written profile: a YAML that round-trips with its provenance header, and the sidecar
with every raw row and the occupancy section validate reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fugaku_sim.calibrate.calibration import fit_calibration
from fugaku_sim.calibrate.profile import calibrated_cluster
from fugaku_sim.calibrate.provenance import provenance
from fugaku_sim.calibrate.record import load_occupancy, sidecar_path, write_profile
from fugaku_sim.errors import UserError
from fugaku_sim.spec import load_cluster
from fugaku_sim.spec.load import dump_yaml
from tests.calibrate.measurements import OVER_BW, OVER_LAT_S, synthetic_measurements


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
    assert load_occupancy(out) == payload["occupancy"]
    occ = payload["occupancy"]["oversubscribed"]
    assert occ["intra_node_latency_us"] == pytest.approx(OVER_LAT_S * 1e6, rel=1e-6)
    assert occ["intra_node_bw_GBps"] == pytest.approx(OVER_BW / 1e9, rel=1e-6)
    assert "speed_probe_s" not in payload["occupancy"]  # measured without a probe


def test_the_calibrations_speed_probe_is_kept_for_validate(tmp_path: Path) -> None:
    raw = {**synthetic_measurements(), "speed_probe": {"seconds": 0.0123}}
    cal = fit_calibration(raw)
    out = tmp_path / "t-cal.yaml"
    write_profile(calibrated_cluster(load_cluster("local"), "t-cal", cal, None, None), cal,
                  provenance(["fugaku-sim", "calibrate"]), raw, out, "local")
    occupancy = load_occupancy(out)
    assert occupancy is not None and occupancy["speed_probe_s"] == 0.0123


def test_occupancy_of_a_profile_without_sidecar_and_a_corrupt_one(tmp_path: Path) -> None:
    profile = tmp_path / "plain.yaml"
    assert load_occupancy(profile) is None  # not calibrated: nothing to apply
    sidecar_path(profile).write_text("{not json")
    with pytest.raises(UserError, match="plain.measurements.json: not valid JSON.*recalibrate"):
        load_occupancy(profile)
