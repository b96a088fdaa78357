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
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_name(final: Path) -> Path:
    """A fresh hidden sibling name for ``final`` (``.name.tmp-XXXX.suffix``: the suffix kept,
    so a writer that goes by it writes the same format), not yet created."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", suffix=final.suffix,
                                dir=final.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _missing_folders(folders: list[Path]) -> list[Path]:
    """Which of ``folders`` and the folders above them do not exist yet (each once, the
    highest first): what writing into them creates, and what a failure removes again."""
    missing: list[Path] = []
    for folder in folders:
        chain, current = [], Path(folder)
        while not current.exists() and current != current.parent:
            chain.append(current)
            current = current.parent
        missing += [f for f in reversed(chain) if f not in missing]
    return missing


def _discard(temps: list[Path], made: list[Path]) -> None:
    """Remove temporary files or folders, then the folders made for them if left empty."""
    for tmp in temps:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()
    for folder in reversed(made):  # the deepest first
        with contextlib.suppress(OSError):  # not empty: something else lives there
            folder.rmdir()


@contextlib.contextmanager
def output_folder(folder: str | Path) -> Iterator[Path]:
    """Make ``folder`` (and the folders above it) for outputs that the block writes, each
    all or nothing itself; if the block fails, the folders made here go again when empty
    (a failed first stage leaves no empty output folder)."""
    folder = Path(folder)
    made = _missing_folders([folder])
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        _discard([], made)
        raise


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; rename it to ``final`` on success; on failure delete it
    and any folder made for it."""
    final = Path(final)
    made = _missing_folders([final.parent])
    tmp = temp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        _discard([tmp], made)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` (if any) when the block succeeds;
    on failure it goes, with any folder made for it."""
    final = Path(final)
    made = _missing_folders([final.parent])
    tmp = temp_name(final)
    tmp.mkdir()
    try:
        yield tmp
        _replace(tmp, final)
    except BaseException:
        _discard([tmp], made)
        raise


def _replace(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; a folder already at ``final`` is moved aside first and
    removed after (``os.replace`` cannot replace a folder that holds files)."""
    if tmp.is_dir() and final.is_dir() and not final.is_symlink():
        old = temp_name(final)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_paths(finals: list[Path]) -> Iterator[list[Path]]:
    """Temporary paths for several outputs that belong together (eval.json and eval.md; a
    CSV and its plot; a release folder and its tarball): all are renamed into place once the
    block succeeds, none when it fails (and any folder made for them goes too), so a reader
    never finds one without the others. The block creates what it needs at each temporary
    path (a file, or a folder with mkdir)."""
    made = _missing_folders([Path(f).parent for f in finals])
    temps = [temp_name(Path(f)) for f in finals]
    try:
        yield temps
        for tmp, final in zip(temps, finals):
            _replace(tmp, Path(final))
    except BaseException:
        _discard(temps, made)
        raise


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path)."""
    current = path
    while True:
        try:
            os.stat(current)
            return current
        except FileNotFoundError:
            if current.parent == current:
                return current
            current = current.parent


def check_output_path(path: str | Path, what: str, folder: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a file (or, with ``folder``,
    made or filled as a folder): what exists there is of the right kind, the nearest existing
    folder above it is a folder and writable. Nothing is created.

    ``what`` names the option in the message (``--out results/eval``).

    Raises:
        UserError: a folder where a file is wanted or a file where a folder is, a device or
            pipe there, a file in the way above it, a folder that cannot be written, or a
            name the OS refuses (one line).
    """
    from fugaku_sim.errors import UserError

    path = Path(path)
    kind = "folder" if folder else "file"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise UserError(f"{what}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise UserError(f"{what}: cannot be used ({exc.strerror})") from None
    if mode is not None:
        if folder and not stat.S_ISDIR(mode):
            raise UserError(f"{what}: exists and is not a folder; give a folder path")
        if not folder and stat.S_ISDIR(mode):
            raise UserError(f"{what}: is a folder; give a file path")
        if not folder and not stat.S_ISREG(mode):
            raise UserError(f"{what}: is a device, pipe or socket, not a {kind} to write")
    base = path if mode is not None and folder else _nearest_existing(path.parent)
    try:
        base_mode = os.stat(base).st_mode
    except OSError as exc:
        raise UserError(f"{what}: cannot be used ({exc.strerror})") from None
    if not stat.S_ISDIR(base_mode):
        raise UserError(f"{what}: {base} is a file, not a folder, so nothing can go below it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot write in {base} (permission denied)")
    try:
        name_max = os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not reported by this file system or OS
        name_max = 255
    too_long = [p for p in path.parts if len(p.encode()) > name_max - 24]
    if too_long:  # the temporary sibling adds a prefix and suffix to the name
        raise UserError(f"{what}: the name {too_long[0][:40]!r}... is too long for the "
                        "file system")
    return path


def plot_format(path: str | Path, what: str) -> str:
    """The file format a plot at ``path`` is written in (its suffix), checked before any
    work against the formats matplotlib can write.

    Raises:
        UserError: no suffix, or one matplotlib cannot write (lists the ones it can).
    """
    from matplotlib.backend_bases import FigureCanvasBase

    from fugaku_sim.errors import UserError

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UserError(f"{what}: cannot write a plot as {suffix or 'a file without a suffix'!r}; "
                        f"use one of {', '.join(sorted(formats))}")
    return suffix


def write_figure(fig: Any, path: str | Path, **savefig: Any) -> None:
    """Save a matplotlib figure at ``path`` in the format its suffix names, atomically (the
    parent folder is made if missing)."""
    path = Path(path)
    fmt = plot_format(path, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8, atomically (the parent folder is made if missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def is_file(path: str | Path) -> bool:
    """Whether ``path`` names an existing regular file; False (not an exception) for a name
    the OS refuses outright (too long, a loop of links, no permission on a folder)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return False


#: the largest file a reader takes by default (a metrics log of a million steps is ~250 MB);
#: a larger one, or an endless one such as /dev/zero, is refused rather than read into memory
MAX_TEXT_BYTES = 512 * 2**20


def check_regular_file(path: str | Path, what: str, hint: str = "", kind: str = "file") -> None:
    """Check that ``path`` is an existing regular file before anything opens it (opening a
    pipe waits for a writer; /dev/zero never ends); ``what``, ``hint`` and ``kind`` as for
    :func:`read_bytes`.

    Raises:
        UserError: missing, a directory, a device, pipe or socket, or not reachable (one
            line).
    """
    from fugaku_sim.errors import UserError

    tail = f"; {hint}" if hint else ""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{what}: no such file{tail}") from None
    except NotADirectoryError:
        raise UserError(f"{what}: no such file (a part of the path is a file){tail}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise UserError(f"{what}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
                        f"{tail}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what}: is a directory, not a {kind}{tail}")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what}: not a regular file (a device, pipe or socket), not a "
                        f"{kind}{tail}")


def read_bytes(path: str | Path, what: str, hint: str = "", kind: str = "file",
               max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    ``what`` names the file in the message, ``hint`` says what to do, ``kind`` what the file
    should be (``a directory, not a JSON file``). A device, pipe or socket is refused before
    it is opened (opening a pipe would wait for a writer; /dev/zero never ends).

    Raises:
        UserError: the file is missing, a directory, not a regular file, larger than
            ``max_bytes``, or unreadable (one line).
    """
    from fugaku_sim.errors import UserError

    tail = f"; {hint}" if hint else ""
    try:
        check_regular_file(path, what, hint, kind)
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{what}: cannot be read ({exc.strerror}){tail}") from None
    if len(data) > max_bytes:
        raise UserError(f"{what}: larger than {max_bytes / 2**20:g} MiB, too large for a "
                        f"{kind}{tail}")
    return data


def read_text(path: str | Path, what: str, hint: str = "", kind: str = "file",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the file at ``path`` (see :func:`read_bytes`).

    Raises:
        UserError: as :func:`read_bytes`, or the file is not UTF-8 (one line).
    """
    from fugaku_sim.errors import UserError

    data = read_bytes(path, what, hint, kind, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        tail = f"; {hint}" if hint else ""
        raise UserError(f"{what}: not UTF-8 text (byte {exc.start}){tail}") from None


def load_json(path: str | Path, what: str, hint: str = "") -> Any:
    """The JSON value in the file at ``path``.

    ``what`` names the file in the message (an option such as ``--layout-from x.json``, or
    the path itself); ``hint`` says what to do, e.g. ``run `fugaku-sim data mix` first``.

    Raises:
        UserError: the file is missing, unreadable, not UTF-8 or not JSON (one line).
    """

    text = read_text(path, what, hint, "JSON file")
    return parse_json(text, what, hint)


def parse_json(text: str, what: str, hint: str = "") -> Any:
    """The JSON value of ``text`` (read from ``what``).

    Raises:
        UserError: not JSON, or nested too deeply for the parser (one line).
    """
    from fugaku_sim.errors import UserError

    tail = f"; {hint}" if hint else ""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{what}: not valid JSON ({exc}){tail}") from None
    except RecursionError:
        raise UserError(f"{what}: JSON nested too deeply{tail}") from None


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
        except (ValueError, RecursionError):
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
