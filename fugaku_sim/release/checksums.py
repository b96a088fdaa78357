"""SHA256SUMS in ``sha256sum`` format: ``<64 hex>  <relative path>`` per line (text mode).

``sha256sum -c SHA256SUMS`` run inside the release directory checks the same thing as
:func:`verify_checksums`.
"""

from __future__ import annotations

import re
from pathlib import Path

from fugaku_sim.checksum import sha256_file
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_text

SUMS_NAME = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")




def write_checksums(directory: Path, names: list[str]) -> Path:
    """Write ``SHA256SUMS`` for ``names`` (paths relative to ``directory``), sorted."""
    lines = [f"{sha256_file(directory / n)}  {n}\n" for n in sorted(names)]
    path = directory / SUMS_NAME
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_checksums(path: Path) -> dict[str, str]:
    """``{relative path: hex digest}`` from a SHA256SUMS file.

    Raises:
        UserError: missing file, a malformed line, an absolute or ``..`` path, a duplicate.
    """
    text = read_text(path, str(path), kind="SHA256SUMS file")
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _LINE.match(line)
        if not m:
            raise UserError(f"{path}:{n}: not a sha256sum line")
        digest, name = m.groups()
        if name.startswith("/") or ".." in Path(name).parts:
            raise UserError(f"{path}:{n}: path {name!r} leaves the release directory")
        if name in sums:
            raise UserError(f"{path}:{n}: {name} listed twice")
        sums[name] = digest
    return sums


def verify_checksums(directory: Path) -> dict[str, str]:
    """Check every file against SHA256SUMS and that no file is left unlisted.

    Returns the checked ``{name: digest}``.

    Raises:
        UserError: a listed file missing or with another digest, or a file not listed.
    """
    sums = read_checksums(directory / SUMS_NAME)
    for name, digest in sums.items():
        path = directory / name
        if not path.is_file():
            raise UserError(f"{path}: listed in {SUMS_NAME} but missing")
        if sha256_file(path) != digest:
            raise UserError(f"{path}: checksum mismatch (file changed since release)")
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
               if p.is_file() or p.is_symlink()}
    extra = sorted(present - set(sums) - {SUMS_NAME})
    if extra:
        raise UserError(f"{directory / extra[0]}: not listed in {SUMS_NAME}"
                        + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    return sums
