"""A training work folder that only the run it belongs to resumes from.

The workflow keeps checkpoints outside the train rule's declared outputs, so a killed run
resumes when it is rerun. But the rule also reruns when its inputs change (new settings,
data, layout), and then the trainer's ``--resume auto`` would silently continue from a
checkpoint of the old run. So before each launch the rule records a key of its inputs in
the work folder; a folder holding another key is moved aside (one generation is kept, as
``<work>.replaced``) and the run starts fresh.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from fugaku_sim.checksum import sha256_file
from fugaku_sim.errors import UserError

KEY_FILE = "workflow-run-key.json"


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


def _stored_key(work: Path) -> dict[str, str] | None:
    try:
        data = json.loads((work / KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prepare_run_dir(work: Path, key: dict[str, str]) -> str:
    """Make ``work`` the folder of the run with ``key``; returns what was done.

    ``"resume"``: the folder belongs to this run (the trainer resumes from its checkpoints);
    ``"fresh"``: there was no folder, or an empty one; ``"replaced"``: the folder held
    another run's files and was moved to ``<work>.replaced`` (replacing an older one).
    """
    action = "fresh"
    if work.is_dir() and any(work.iterdir()):
        if _stored_key(work) == key:
            return "resume"
        aside = work.with_name(work.name + ".replaced")
        if aside.exists():
            shutil.rmtree(aside)
        work.rename(aside)
        action = "replaced"
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".{KEY_FILE}.tmp"
    tmp.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(work / KEY_FILE)
    return action
