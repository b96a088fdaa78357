"""Launching the suites: the compute suite runs twice, first and last, at half length each,
and the profile takes each figure from both (their geometric mean)."""

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
    pooled_compute,
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


@pytest.mark.parametrize("factor", [1.44, 0.64, 1.0])
def test_each_figure_is_the_geometric_mean_of_the_launches(factor: float) -> None:
    first = synthetic_measurements()["compute"]
    for row in first["gemm"]:  # two ranks, the second 10% slower
        row["seconds_per_rank"] = [row["seconds"], 1.1 * row["seconds"]]
    last = _slowed(first, factor)
    for row in last["gemm"]:
        row["seconds_per_rank"] = [s * factor for s in row["seconds_per_rank"]]
    pooled, how = pooled_compute([first, last])
    root = factor ** 0.5
    for section in ("gemm", "kernels", "tiny_ops", "stream", "optimizer"):
        for a, p in zip(first[section], pooled[section]):
            assert p["seconds"] == pytest.approx(a["seconds"] * root)
            assert {k: v for k, v in p.items() if k not in ("seconds", "seconds_per_rank")} \
                == {k: v for k, v in a.items() if k not in ("seconds", "seconds_per_rank")}
    assert pooled["gemm"][0]["seconds_per_rank"] == pytest.approx(
        [s * root for s in first["gemm"][0]["seconds_per_rank"]])
    assert how["launches"] == 2 and how["time_vs_first"] == pytest.approx([1.0, factor])
    assert how["rows"][1]["gemm"] == last["gemm"]  # every launch's rows kept
    assert first["gemm"][0]["seconds"] != pooled["gemm"][0]["seconds"] or factor == 1.0


def test_the_compute_suite_runs_first_and_last_at_half_length(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each launch gets half the budget and a file of its own; the profile gets the launches'
    rows pooled and the record of them (the suites themselves faked)."""
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
    assert result["compute"]["tiny_ops"][0]["seconds"] == pytest.approx(
        raw["compute"]["tiny_ops"][0]["seconds"] * 1.5 ** 0.5)
    assert result["compute_launches"]["time_vs_first"] == pytest.approx([1.0, 1 / 1.5])
    assert len(result["machine"]) == len(planned_runs(2))


def test_the_profile_header_says_how_the_launches_went() -> None:
    from fugaku_sim.calibrate.calibration import fit_calibration
    from fugaku_sim.calibrate.profile import calibrated_cluster
    from fugaku_sim.calibrate.provenance import provenance
    from fugaku_sim.spec import load_cluster

    cal = fit_calibration(synthetic_measurements())
    spec = calibrated_cluster(load_cluster("local"), "t", cal, None, None)
    prov = provenance(["fugaku-sim", "calibrate"])
    launches = {"launches": 2, "time_vs_first": [1.0, 0.74], "wall_s": [30, 20]}
    text = "\n".join(header_lines(spec, cal, prov, "local", Path("t.measurements.json"),
                                  launches))
    assert "each figure the geometric mean of the launches' (their times against the first: " \
        "1.00, 0.74)" in text
    plain = "\n".join(header_lines(spec, cal, prov, "local", Path("t.measurements.json")))
    assert "launch" not in plain and "(as validate takes the median step)." in plain


@pytest.mark.parametrize("moved, warned", [(1.3, True), (1.05, False)])
def test_calibrate_pools_the_launches_and_says_when_the_host_moved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    moved: float, warned: bool,
) -> None:
    """The command end to end with the suites faked: the profile's header says how the
    launches went, and a launch that ran much slower than the other is reported."""
    import json

    from fugaku_sim.calibrate import probe
    from fugaku_sim.cli import main

    raw = synthetic_measurements()

    def fake_measure(*args: Any, **kwargs: Any) -> dict[str, Any]:
        first = _slowed(raw["compute"], moved)
        pooled, launches = pooled_compute([first, raw["compute"]])
        return {**copy.deepcopy(raw), "compute": pooled, "compute_launches": launches}

    monkeypatch.setattr(measure, "measure_machine", fake_measure)
    monkeypatch.setattr(probe, "run_probe", lambda: 0.02)
    out = tmp_path / "c.yaml"
    assert main(["calibrate", "--name", "c", "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert ("slower in one of its two launches" in err) is warned
    assert "the geometric mean of the launches'" in out.read_text(encoding="utf-8")
    sidecar = json.loads((tmp_path / "c.measurements.json").read_text(encoding="utf-8"))
    assert sidecar["measurements"]["compute_launches"]["time_vs_first"] == pytest.approx(
        [1.0, 1 / moved])
