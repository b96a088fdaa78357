"""The train rule's work folder (fugaku_sim.workflow.rundir): only the run with the same
inputs resumes from it; another run's folder is moved aside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fugaku_sim.workflow.rundir import (
    KEY_FILE,
    prepare_run_dir,
    replaced_folder,
    run_key,
    work_folder,
)


def test_run_dir_is_resumed_only_by_the_run_with_the_same_inputs(tmp_path: Path) -> None:
    settings = tmp_path / "train_settings.yaml"
    settings.write_text("steps: 30\n")
    work = work_folder(tmp_path)
    key = run_key([settings], {"model": "gpt-micro"})
    assert prepare_run_dir(work, key) == "fresh" and (work / KEY_FILE).is_file()
    (work / "checkpoints").mkdir()
    assert prepare_run_dir(work, run_key([settings], {"model": "gpt-micro"})) == "resume"
    assert (work / "checkpoints").is_dir()

    settings.write_text("steps: 60\n")  # other settings: the old checkpoints must not be used
    assert prepare_run_dir(work, run_key([settings], {"model": "gpt-micro"})) == "replaced"
    assert (replaced_folder(work) / "checkpoints").is_dir()
    assert sorted(p.name for p in work.iterdir()) == [KEY_FILE]
    assert prepare_run_dir(work, run_key([settings], {"model": "gpt-tiny"})) == "replaced"
    assert sorted(p.name for p in replaced_folder(work).iterdir()) == [KEY_FILE]  # one kept


def test_a_folder_whose_key_cannot_be_read_is_not_resumed(tmp_path: Path) -> None:
    work = work_folder(tmp_path)
    (work / "checkpoints").mkdir(parents=True)
    (work / KEY_FILE).write_text("{not json")
    key = run_key([], {"model": "gpt-micro"})
    assert prepare_run_dir(work, key) == "replaced"
    assert prepare_run_dir(work, key) == "resume"


def test_work_folder_is_beside_the_declared_outputs(tmp_path: Path) -> None:
    assert work_folder(tmp_path / "results/train") == tmp_path / "results/train/run"
    assert replaced_folder(tmp_path / "results/train/run") == tmp_path / "results/train/run.replaced"


def test_run_dir_verb_names_an_unreadable_input(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fugaku_sim.cli", "workflow", "run-dir",
                           "--work", str(tmp_path / "run"), "--inputs", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "nope: cannot read" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
