"""Write files and directories under temporary names and rename them at the end.

A failed stage must leave nothing half-written: every output goes to a hidden temporary
name in the same directory (so the rename is atomic on POSIX) and is renamed into place only
when complete; on any exception the temporary is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_name(final: Path) -> Path:
    """A fresh hidden sibling name for ``final`` (``.name.tmp-XXXX``), not yet created."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; rename it to ``final`` on success, delete it on failure."""
    final = Path(final)
    tmp = temp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` (if any) when the block succeeds."""
    final = Path(final)
    tmp = temp_name(final)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = temp_name(final)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8, atomically (the parent folder is made if missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file written by an earlier stage.

    Raises:
        UserError: the file is missing (run the stage named by ``what`` first) or corrupt.
    """
    from fugaku_sim.errors import UserError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run `fugaku-sim data {what}` first") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc}); rerun `fugaku-sim data {what}`") \
            from None
