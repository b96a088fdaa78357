"""Files in and out, for every stage: atomic writes and JSON reads behind one error path.

Writing: a failed stage must leave nothing half-written. Every output goes to a hidden
temporary name in the same directory (so the rename is atomic on POSIX) and is renamed into
place only when complete; on any exception the temporary is removed.

Reading: a file a user hands over (or an earlier stage wrote) may be missing, unreadable,
not UTF-8, not JSON, or JSON of the wrong shape. :func:`read_text`, :func:`read_json_object`,
:func:`read_json` and :func:`read_json_lines` turn each of these into a one-line
:class:`~fugaku_sim.errors.UserError` that names the file and what to do.
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


def read_text(path: str | Path, what: str, hint: str = "", kind: str = "file") -> str:
    """The UTF-8 text of the file at ``path``.

    ``what`` names the file in the message, ``hint`` says what to do, ``kind`` what the file
    should be (``a directory, not a JSON file``).

    Raises:
        UserError: the file is missing, a directory, unreadable or not UTF-8 (one line).
    """
    from fugaku_sim.errors import UserError

    tail = f"; {hint}" if hint else ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what}: no such file{tail}") from None
    except IsADirectoryError:
        raise UserError(f"{what}: is a directory, not a {kind}{tail}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what}: not UTF-8 text{tail}") from None
    except OSError as exc:
        raise UserError(f"{what}: cannot be read ({exc.strerror}){tail}") from None


def load_json(path: str | Path, what: str, hint: str = "") -> Any:
    """The JSON value in the file at ``path``.

    ``what`` names the file in the message (an option such as ``--layout-from x.json``, or
    the path itself); ``hint`` says what to do, e.g. ``run `fugaku-sim data mix` first``.

    Raises:
        UserError: the file is missing, unreadable, not UTF-8 or not JSON (one line).
    """
    from fugaku_sim.errors import UserError

    text = read_text(path, what, hint, "JSON file")
    try:
        return json.loads(text)
    except ValueError as exc:
        tail = f"; {hint}" if hint else ""
        raise UserError(f"{what}: not valid JSON ({exc}){tail}") from None


def read_json_object(path: str | Path, what: str, hint: str = "") -> dict[str, Any]:
    """The JSON object (mapping) in the file at ``path`` (see :func:`load_json`).

    Raises:
        UserError: as :func:`load_json`, or the file holds JSON that is not an object.
    """
    from fugaku_sim.errors import UserError

    data = load_json(path, what, hint)
    if not isinstance(data, dict):
        tail = f"; {hint}" if hint else ""
        raise UserError(f"{what}: expected a JSON object, found {type(data).__name__}{tail}")
    return data


def read_json_lines(path: str | Path, what: str, hint: str = "",
                    skip_bad: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per non-blank line.

    With ``skip_bad`` a line that is not a JSON object is left out instead (a log that a
    killed process may have cut short mid-line).

    Raises:
        UserError: as :func:`load_json`, or (without ``skip_bad``) a line that is not a JSON
            object, named ``what:line``.
    """
    from fugaku_sim.errors import UserError

    records = []
    for number, line in enumerate(read_text(path, what, hint, "JSON Lines file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif not skip_bad:
            tail = f"; {hint}" if hint else ""
            raise UserError(f"{what}:{number}: not a JSON object{tail}")
    return records


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file written by the data stage ``what`` (``mix``, ``tokenize`` ...).

    Raises:
        UserError: the file is missing (run that stage first) or corrupt (rerun it).
    """
    path = Path(path)
    if not path.exists():
        return load_json(path, str(path), f"run `fugaku-sim data {what}` first")
    return load_json(path, str(path), f"rerun `fugaku-sim data {what}`")
