"""Shared state of the PJM stand-ins (pjsub, pjstat, pjdel) used by the workflow tests.

Each job is one JSON file ``$PJM_STANDIN_DIR/jobs/<id>.json`` holding the submitted script's
path, its ``#PJM`` directives (raw and parsed), the state (QUE, RUN, EXT, CCL) and, once it
ended, the exit code and PJM code. A step job's sub-jobs are ``<id>_<step number>.json``
with their step number, the step job id and their dependency expression. Updates hold an
flock on ``$PJM_STANDIN_DIR/lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    value = os.environ.get("PJM_STANDIN_DIR")
    if not value:
        print(f"{Path(sys.argv[0]).name}: error: set PJM_STANDIN_DIR to the stand-in state directory", file=sys.stderr)
        sys.exit(2)
    path = Path(value)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    root = state_dir()
    with open(root / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def job_path(root: Path, jobid: str) -> Path:
    return root / "jobs" / f"{jobid}.json"


def valid_id(jobid: str) -> bool:
    """A job id (``1000``) or a step job's sub-job id (``1000_2``)."""
    return re.fullmatch(r"[0-9]+(_[0-9]+)?", jobid) is not None


def id_key(jobid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in jobid.split("_"))


def load(root: Path, jobid: str) -> dict[str, Any] | None:
    path = job_path(root, jobid)
    if not valid_id(jobid) or not path.exists():
        return None
    job: dict[str, Any] = json.loads(path.read_text())
    return job


def save(root: Path, job: dict[str, Any]) -> None:
    path = job_path(root, str(job["id"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job, indent=1))
    tmp.replace(path)


def all_jobs(root: Path) -> list[dict[str, Any]]:
    paths = sorted((root / "jobs").glob("*.json"), key=lambda p: id_key(p.stem))
    return [json.loads(p.read_text()) for p in paths]


def parse_directives(script: str) -> tuple[list[str], list[list[str]]]:
    """Raw ``#PJM`` lines and their options as ``[option, value]`` pairs (value "" for flags)."""
    raw = [line for line in script.splitlines() if line.startswith("#PJM")]
    pairs: list[list[str]] = []
    for line in raw:
        tokens = shlex.split(line[len("#PJM"):])
        i = 0
        while i < len(tokens):
            option = tokens[i]
            takes_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("-")
            pairs.append([option, tokens[i + 1] if takes_value else ""])
            i += 2 if takes_value else 1
    return raw, pairs
