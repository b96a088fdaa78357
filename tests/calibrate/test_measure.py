"""Launching the suites: the compute suite runs twice, first and last, at half length each,
and the profile keeps the faster launch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from fugaku_sim.calibrate import measure
from fugaku_sim.calibrate.launch import parse_launcher
from fugaku_sim.calibrate.measure import (
    compute_speed_ratio,
    measure_machine,
    planned_runs,
    quieter_compute,
)
from fugaku_sim.calibrate.record import header_lines
from fugaku_sim.errors import UserError
from tests.calibrate.measurements import synthetic_measurements


def _slowed(compute: dict[str, Any], factor: float, sections: tuple[str, ...] | None = None
            ) -> dict[str, Any]:
    out = copy.deepcopy(compute)
    for section, rows in out.items():
        if isinstance(rows, list) and (sections is None or section in sections):
            for row in rows:
                row["seconds"] *= factor
    return out


def test_the_speed_ratio_is_the_median_over_the_rows_both_timed() -> None:
    first = synthetic_measurements()["compute"]
    assert compute_speed_ratio(first, first) == pytest.approx(1.0)
    assert compute_speed_ratio(first, _slowed(first, 1.4)) == pytest.approx(1.4)
    # a burst over a few rows moves the median little
    assert compute_speed_ratio(first, _slowed(first, 3.0, ("tiny_ops",))) == pytest.approx(1.0)
    other = copy.deepcopy(first)
    other["kernels"][0]["tokens"] += 1
    with pytest.raises(UserError, match="different kernels cases"):
        compute_speed_ratio(first, other)
    with pytest.raises(UserError, match="timed nothing"):
        compute_speed_ratio({}, {})


@pytest.mark.parametrize("factor, kept", [(1.4, 1), (0.7, 2), (1.0, 1)])
def test_the_faster_launch_is_kept(factor: float, kept: int) -> None:
    first = synthetic_measurements()["compute"]
    last = _slowed(first, factor)
    chosen, how = quieter_compute([first, last])
    assert chosen is (first, last)[kept - 1]
    assert how["kept"] == kept and how["launches"] == 2
    assert how["time_vs_first"] == pytest.approx([1.0, factor])


def test_the_compute_suite_runs_first_and_last_at_half_length(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each launch gets half the budget and a file of its own; the profile gets the faster
    launch's rows and the record of the choice (the suites themselves faked)."""
    raw = synthetic_measurements()
    calls: list[tuple[str, int, float, str]] = []
    slow = _slowed(raw["compute"], 1.5)

    def fake(launcher: Any, suite: str, ranks: int, quick: bool, workdir: Path,
             timeout_s: float, allocator: str = "kept", budget_fraction: float = 1.0,
             tag: str = "") -> Any:
        calls.append((suite, ranks, budget_fraction, tag))
        if suite == "compute":  # the first launch ran in a burst
            return slow if tag == "-1" else raw["compute"]
        return raw[suite][0] if suite == "share" else raw["comm"][0]

    monkeypatch.setattr(measure, "run_suite", fake)
    result = measure_machine(parse_launcher(None), 2, quick=True)
    assert [(s, n) for s, n, _, _ in calls] == planned_runs(2)
    assert [(f, t) for s, _, f, t in calls if s == "compute"] == [(0.5, "-1"), (0.5, "-2")]
    assert all(f == 1.0 and t == "" for s, _, f, t in calls if s != "compute")
    assert result["compute"] is raw["compute"]
    assert result["compute_choice"]["kept"] == 2
    assert result["compute_choice"]["time_vs_first"] == pytest.approx([1.0, 1 / 1.5])
    assert len(result["machine"]) == len(planned_runs(2))


def test_the_profile_header_says_which_launch_it_kept() -> None:
    from fugaku_sim.calibrate.calibration import fit_calibration
    from fugaku_sim.calibrate.profile import calibrated_cluster
    from fugaku_sim.calibrate.provenance import provenance
    from fugaku_sim.spec import load_cluster

    cal = fit_calibration(synthetic_measurements())
    spec = calibrated_cluster(load_cluster("local"), "t", cal, None, None)
    prov = provenance(["fugaku-sim", "calibrate"])
    choice = {"launches": 2, "kept": 2, "time_vs_first": [1.0, 0.74], "wall_s": [30, 20]}
    text = "\n".join(header_lines(spec, cal, prov, "local", Path("t.measurements.json"),
                                  choice))
    assert "launch 2 is kept, the fastest (times against the first: 1.00, 0.74)" in text
    plain = "\n".join(header_lines(spec, cal, prov, "local", Path("t.measurements.json")))
    assert "launch" not in plain and "(as validate takes the median step)." in plain


@pytest.mark.parametrize("moved, warned", [(1.3, True), (1.05, False)])
def test_calibrate_keeps_the_faster_launch_and_says_when_the_host_moved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    moved: float, warned: bool,
) -> None:
    """The command end to end with the suites faked: the profile's header names the launch
    kept, and a launch that ran much slower than the other is reported."""
    import json

    from fugaku_sim.calibrate import probe
    from fugaku_sim.cli import main

    raw = synthetic_measurements()

    def fake_measure(*args: Any, **kwargs: Any) -> dict[str, Any]:
        first = _slowed(raw["compute"], moved)
        kept, choice = quieter_compute([first, raw["compute"]])
        return {**copy.deepcopy(raw), "compute": kept, "compute_choice": choice}

    monkeypatch.setattr(measure, "measure_machine", fake_measure)
    monkeypatch.setattr(probe, "run_probe", lambda: 0.02)
    out = tmp_path / "c.yaml"
    assert main(["calibrate", "--name", "c", "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert ("slower in one of its two launches" in err) is warned
    assert "launch 2 is kept, the fastest" in out.read_text(encoding="utf-8")
    sidecar = json.loads((tmp_path / "c.measurements.json").read_text(encoding="utf-8"))
    assert sidecar["measurements"]["compute_choice"]["kept"] == 2
