"""How workflow rules call the package and MPI when the virtual environment is not on PATH.

A Snakemake shell rule that says bare ``python`` or ``mpiexec`` fails with exit 127 when the
venv is not on PATH, so rules use the running interpreter's absolute path and resolve a bare
launcher beside it.

Rules whose job is sized in cores (``threads``) run the package with one BLAS thread per
process (:func:`cli_command` with ``single_thread=True``): the training ranks, each one
core's worth of work, and the single-process evaluation, release and calibration steps, which
would otherwise start a BLAS thread per core beside other jobs. The variables are the ones
:mod:`fugaku_sim.calibrate.launch` gives every rank it starts.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from fugaku_sim.calibrate.launch import SINGLE_THREAD_ENV


def python_executable() -> str:
    """The interpreter running Snakemake (the project's venv), quoted for a shell."""
    return shlex.quote(sys.executable)


def env_command(env: Mapping[str, str]) -> str:
    """``env NAME=value ...``: a command prefix that sets ``env`` for the program after it
    (also after an MPI launcher, for every rank it starts, whatever the launcher passes on).

    >>> env_command({"OMP_NUM_THREADS": "1"})
    'env OMP_NUM_THREADS=1'
    """
    return shlex.join(["env", *(f"{name}={value}" for name, value in env.items())])


def cli_command(single_thread: bool = False) -> str:
    """``<python> -m fugaku_sim.cli``: the ``fugaku-sim`` command without relying on PATH;
    with ``single_thread``, prefixed to run with one BLAS thread (see the module docstring).
    """
    command = f"{python_executable()} -m fugaku_sim.cli"
    return f"{env_command(SINGLE_THREAD_ENV)} {command}" if single_thread else command


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
