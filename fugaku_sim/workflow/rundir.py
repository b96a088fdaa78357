"""A training work folder that only the run it belongs to resumes from.

The workflow keeps checkpoints outside the train rule's declared outputs, in the work folder
``<train outputs>/run`` (:func:`work_folder`), so a killed run resumes when it is rerun. But
the rule also reruns when its inputs change (new settings, data, layout), and then the
trainer's ``--resume auto`` would silently continue from a checkpoint of the old run. So
before each launch the rule records a key of its inputs in the work folder; a folder holding
another key is moved aside (one generation is kept, :func:`replaced_folder`) and the run
starts fresh.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from fugaku_sim.checksum import sha256_file
from fugaku_sim.errors import UserError
from fugaku_sim.io import load_json, write_json

KEY_FILE = "workflow-run-key.json"
WORK_FOLDER = "run"  # beside the train rule's declared outputs
Action = Literal["resume", "fresh", "replaced"]


def work_folder(outputs: str | Path) -> Path:
    """The trainer's work folder of a run whose declared outputs are in ``outputs``.

    >>> work_folder("results/train").as_posix()
    'results/train/run'
    """
    return Path(outputs) / WORK_FOLDER


def replaced_folder(work: str | Path) -> Path:
    """Where :func:`prepare_run_dir` moves a work folder of another run.

    >>> replaced_folder("results/train/run").as_posix()
    'results/train/run.replaced'
    """
    work = Path(work)
    return work.with_name(work.name + ".replaced")


def run_key(files: Sequence[Path], extra: Mapping[str, str]) -> dict[str, str]:
    """sha256 of every input file's bytes (by name) plus the ``extra`` settings.

    Raises:
        UserError: an input file cannot be read.
    """
    key = {f"arg:{name}": value for name, value in sorted(extra.items())}
    for path in files:
        try:
            key[f"file:{path.name}"] = sha256_file(path)
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return key


def _stored_key(work: Path) -> object:
    """The key recorded in ``work``; None if there is none or it cannot be read (then the
    folder cannot be shown to belong to the run, and is moved aside)."""
    try:
        return load_json(work / KEY_FILE, KEY_FILE)
    except UserError:
        return None


def prepare_run_dir(work: Path, key: dict[str, str]) -> Action:
    """Make ``work`` the folder of the run with ``key``; returns what was done.

    ``"resume"``: the folder belongs to this run (the trainer resumes from its checkpoints);
    ``"fresh"``: there was no folder, or an empty one; ``"replaced"``: the folder held
    another run's files and was moved to :func:`replaced_folder` (replacing an older one).
    """
    action: Action = "fresh"
    if work.is_dir() and any(work.iterdir()):
        if _stored_key(work) == key:
            return "resume"
        aside = replaced_folder(work)
        if aside.exists():
            shutil.rmtree(aside)
        work.rename(aside)
        action = "replaced"
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / KEY_FILE, key)
    return action
