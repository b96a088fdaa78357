"""How workflow rules call the package and MPI when the virtual environment is not on PATH.

A Snakemake shell rule that says bare ``python`` or ``mpiexec`` fails with exit 127 when the
venv is not on PATH (shared/notes/environment-facts.md), so rules use the running
interpreter's absolute path and resolve a bare launcher beside it.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path


def python_executable() -> str:
    """The interpreter running Snakemake (the project's venv), quoted for a shell."""
    return shlex.quote(sys.executable)


def cli_command() -> str:
    """``<python> -m fugaku_sim.cli``: the ``fugaku-sim`` command without relying on PATH."""
    return f"{python_executable()} -m fugaku_sim.cli"


def resolve_launcher(launcher: str, python: str | None = None) -> str:
    """Make a bare ``mpiexec``/``mpirun`` absolute: the venv's first, then the one on PATH.

    Anything else (``srun --mpi=pmi2``, a full path, a site wrapper) is returned unchanged.

    >>> resolve_launcher("srun --mpi=pmi2")
    'srun --mpi=pmi2'
    """
    words = launcher.split()
    if words and words[0] in ("mpiexec", "mpirun"):
        beside = Path(python or sys.executable).parent / words[0]
        found = str(beside) if beside.exists() else shutil.which(words[0])
        words[0] = found or words[0]
    return " ".join(words)
