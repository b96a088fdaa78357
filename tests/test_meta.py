"""The meta block: git state where there is one (never a failure without git), spec files'
identity and measurement date, arguments as JSON."""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from fugaku_sim import meta as meta_module
from fugaku_sim.checksum import sha256_file
from fugaku_sim.meta import (
    REPO_ROOT,
    argument_values,
    build_meta,
    git_state,
    measurement,
    shown_path,
    source_identity,
)


def test_git_state_of_a_checkout_and_of_no_checkout(tmp_path: Path) -> None:
    git_state.cache_clear()
    assert git_state(tmp_path) == (None, None)  # no .git: an installed package
    if (REPO_ROOT / ".git").exists():
        commit, dirty = git_state(REPO_ROOT)
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        assert commit == head and isinstance(dirty, bool)
    git_state.cache_clear()


def test_git_missing_or_failing_gives_nulls(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()  # looks like a checkout, but git cannot read it
    git_state.cache_clear()
    assert git_state(tmp_path) == (None, None)
    git_state.cache_clear()

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(meta_module.subprocess, "run", no_git)
    assert git_state(REPO_ROOT) == (None, None)
    meta = build_meta([], {})
    assert meta["git_commit"] is None and meta["git_dirty"] is None
    git_state.cache_clear()


def test_identity_of_measured_fitted_and_datasheet_files(tmp_path: Path) -> None:
    calibrated = REPO_ROOT / "clusters/local-calibrated.yaml"
    ident = source_identity("local-calibrated", calibrated)
    prov = json.loads(calibrated.with_name("local-calibrated.measurements.json").read_text())
    assert ident == {"name": "local-calibrated", "file": "clusters/local-calibrated.yaml",
                     "sha256": sha256_file(calibrated),
                     "measured_utc": prov["provenance"]["date_utc"],
                     "measured_on": f"{prov['provenance']['host']} "
                                    f"({prov['provenance']['cpu_model']}, 2 cores)"}
    assert source_identity("fugaku", REPO_ROOT / "clusters/fugaku.yaml")["measured_utc"] is None
    fitted = tmp_path / "stack.yaml"  # a fitted file with its own provenance section
    fitted.write_text("name: s\nprovenance:\n  date: '2026-12-02T09:24:00+00:00'\n")
    assert measurement(fitted) == {"date": "2026-12-02T09:24:00+00:00"}
    assert source_identity("s", fitted)["measured_utc"] == "2026-12-02T09:24:00+00:00"
    assert shown_path(fitted) == str(fitted)  # outside the repository: as given
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [\n")
    assert source_identity("b", broken)["measured_utc"] is None  # unreadable: no date
    assert source_identity("memory", None)["sha256"] is None


def test_several_files_of_one_kind_are_listed() -> None:
    runs = REPO_ROOT / "clusters/runs"
    meta = build_meta([("runs", "a", runs / "megatron-sc21.csv"),
                       ("runs", "b", runs / "fugaku-deepspeed-2023.csv")], {"x": 1})
    assert [r["name"] for r in meta["runs"]] == ["a", "b"] and meta["inputs"] == {"x": 1}


def test_arguments_are_json() -> None:
    args = argparse.Namespace(out=Path("x/y"), start=datetime(2024, 1, 15), values=(1.0, 2.0),
                              _module=object(), json=True)
    assert argument_values(args) == {"json": True, "out": "x/y",
                                     "start": "2024-01-15T00:00:00", "values": [1.0, 2.0]}
    json.dumps(argument_values(args))
