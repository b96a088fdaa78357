"""The whole loop at CI speed: quick calibration on 2 ranks, two tiny real training runs,
validate. Asserts the table is complete and the errors finite; the error targets are the
benchmark's business (benchmarks/bench_validate.py), CI machines being noisy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fugaku_sim.calibrate.compare import BREAKDOWN_KEYS

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    from fugaku_sim.cli import main

    tmp = tmp_path_factory.mktemp("loop")
    profile = tmp / "clusters" / "ci-calibrated.yaml"
    assert main(["calibrate", "--name", "ci-calibrated", "--out", str(profile),
                 "--ranks", "2", "--quick"]) == 0
    out = tmp / "compare"
    assert main(["validate", "--cluster", str(profile), "--runs", "quick",
                 "--out", str(out)]) == 0
    return profile, out, json.loads((out / "compare.json").read_text(encoding="utf-8"))


def test_calibrated_profile_is_written(loop: tuple[Path, Path, dict]) -> None:
    from fugaku_sim.spec import load_cluster

    profile, _, _ = loop
    spec = load_cluster(str(profile))
    assert spec.node.processes_per_node == 2
    assert spec.node.peak_TFLOPs.fp32 > 0 and spec.node.op_overhead_us > 0
    sidecar = json.loads(profile.with_name("ci-calibrated.measurements.json").read_text())
    assert sidecar["measurements"]["quick"] is True


def test_table_is_complete_and_errors_finite(loop: tuple[Path, Path, dict]) -> None:
    _, out, data = loop
    runs = data["runs"]
    assert [(r["model"], r["ranks"]) for r in runs] == [("gpt-micro", 1), ("gpt-micro", 2)]
    for r in runs:
        assert r["measured_step_s"] > 0 and r["predicted_step_s"] > 0
        assert math.isfinite(r["error"])
        assert set(r["measured_breakdown_s"]) == set(BREAKDOWN_KEYS)
        assert set(r["predicted_breakdown_s"]) == set(BREAKDOWN_KEYS)
    summary = data["summary"]
    assert summary["all_finite"] and summary["runs"] == 2
    assert math.isfinite(summary["median_abs_error"])
    assert summary["fastest_by_model"][0]["runs"] == 2
    for name in ("compare.json", "compare.csv", "compare.md", "compare.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "compare.csv").read_text().splitlines()) == 3


def test_from_metrics_rereads_a_finished_run(loop: tuple[Path, Path, dict],
                                             tmp_path: Path) -> None:
    """The workflow's compare rule: one finished run in, predicted vs measured out."""
    from fugaku_sim.cli import main

    profile, out, data = loop
    run_dir = Path(data["runs"][1]["source"])
    again = tmp_path / "one"
    assert main(["validate", "--cluster", str(profile), "--from-metrics",
                 str(run_dir / "summary.json"), "--out", str(again)]) == 0
    one = json.loads((again / "compare.json").read_text())
    assert len(one["runs"]) == 1
    assert one["runs"][0]["measured_step_s"] == pytest.approx(data["runs"][1]["measured_step_s"])
