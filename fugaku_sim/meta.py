"""The ``meta`` block of every ``--json`` output: which tool, commit, spec files and inputs made
it, so that a number read back months later can be traced to what produced it::

    "meta": {
      "tool": "fugaku-sim", "version": "0.1.0",
      "git_commit": "e43c2f6...", "git_dirty": false,   # null outside a git checkout
      "cluster": {"name": "fugaku", "file": "clusters/fugaku.yaml", "sha256": "9f2c...",
                  "measured_utc": null, "measured_on": null},
      "model": {"name": "fugaku-llm-13b", "file": "fugaku_sim/spec/presets/...", ...},
      "inputs": {"arguments": {...}, "layout_record": {...}}
    }

One entry per spec file the output depends on (a cluster profile, a model preset, a software
stack, a runs file: :data:`Source` triples of kind, name and file; a list when several files
are of one kind), each with the sha256 of the
file's bytes and, when the file says it was measured, when and where (``measured_utc`` and
``measured_on``: the provenance of a calibrated profile's measurement sidecar, or of a fitted
file's own ``provenance`` section; null for datasheet and assumed figures). ``file`` is relative to the repository for
the files it ships, else as given. ``inputs`` holds the resolved command-line arguments and,
for a verb that builds a job, its layout record (:mod:`fugaku_sim.spec.record`).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fugaku_sim import __version__

#: (kind, name, file): a spec file an output depends on (file None: built in memory)
Source = tuple[str, str, Path | None]
REPO_ROOT = Path(__file__).resolve().parents[1]
TOOL = "fugaku-sim"


@functools.lru_cache(maxsize=1)
def git_state(root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the package runs from; (None, None) when it is not a
    git checkout (an installed wheel) or git is missing or fails."""
    if not (root / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no"], check=True, capture_output=True,
                                 text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(changes.strip())


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is one of its files, else as given."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def measurement(path: Path) -> dict[str, Any] | None:
    """The provenance of the measured figures of the spec file ``path``: that of its
    calibration sidecar (``<stem>.measurements.json``), else its own ``provenance`` section (a
    fitted stack); None when neither exists (datasheet or assumed figures) or is readable."""
    from fugaku_sim.calibrate.record import sidecar_path
    from fugaku_sim.errors import UserError
    from fugaku_sim.io import read_json_object
    from fugaku_sim.spec import read_yaml

    sidecar = sidecar_path(path)
    try:
        if sidecar.is_file():
            prov = read_json_object(sidecar, str(sidecar)).get("provenance")
        else:
            prov = read_yaml(path).get("provenance") if path.suffix in (".yaml", ".yml") else None
    except UserError:
        return None
    return prov if isinstance(prov, dict) else None


def machine_of(prov: dict[str, Any]) -> str | None:
    """``host (CPU, N cores)`` of a provenance record (:func:`fugaku_sim.calibrate.provenance.
    provenance`), or None when it names no host."""
    if not prov.get("host"):
        return None
    cpu = ", ".join(str(x) for x in (prov.get("cpu_model"),
                                     f"{prov['cores']} cores" if prov.get("cores") else None)
                    if x)
    return f"{prov['host']} ({cpu})" if cpu else str(prov["host"])


def source_identity(name: str, path: Path | None) -> dict[str, Any]:
    """Name, file, sha256 and, for measured figures, when and on which machine (nulls for no
    file or no measurement)."""
    from fugaku_sim.checksum import sha256_file

    if path is None or not path.is_file():
        return {"name": name, "file": None, "sha256": None, "measured_utc": None,
                "measured_on": None}
    prov = measurement(path) or {}
    when = prov.get("date_utc") or prov.get("date")
    return {"name": name, "file": shown_path(path), "sha256": sha256_file(path),
            "measured_utc": str(when) if when else None, "measured_on": machine_of(prov)}


def json_ready(value: Any) -> Any:
    """Arguments as JSON values: paths and dates as text, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def argument_values(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options of a verb (defaults included), without argparse's own fields."""
    return {k: json_ready(v) for k, v in sorted(vars(args).items()) if not k.startswith("_")}


def build_meta(sources: Iterable[Source], inputs: dict[str, Any]) -> dict[str, Any]:
    """The ``meta`` block (see the module docstring)."""
    commit, dirty = git_state()
    meta: dict[str, Any] = {"tool": TOOL, "version": __version__, "git_commit": commit,
                            "git_dirty": dirty}
    for kind, name, path in sources:
        identity = source_identity(name, path)
        if kind not in meta:
            meta[kind] = identity
        else:  # several files of one kind (runs files): a list, in the order given
            earlier = meta[kind]
            meta[kind] = [*(earlier if isinstance(earlier, list) else [earlier]), identity]
    meta["inputs"] = inputs
    return meta
