"""Start MPI programs as subprocesses: ``mpiexec -n N python -m ...`` or a scheduler's launcher.

``fugaku-sim calibrate`` and ``validate`` run as one ordinary process and launch each
benchmark or training run with the launcher below, so one command measures several rank
counts. The default is the ``mpiexec`` beside the running Python (the MPICH wheel in the
venv), else the first on ``PATH``. Inside a Slurm allocation pass
``--launcher "srun --mpi=pmi2 -n {ranks}"``; on Fugaku ``--launcher "mpiexec -n {ranks}"``.

Every rank is started with one BLAS thread (``OPENBLAS_NUM_THREADS=1`` and friends), so a
rank is one core's worth of work and ranks beyond the core count share cores.

With ``allocator="kept"`` (the default of calibrate and validate) glibc's allocator is told
to keep freed memory (:data:`KEPT_MEMORY_ENV`). By default it hands every freed block above
128 KiB back to the kernel, so a numpy training step page-faults (and the kernel zeroes) its
activations afresh each micro-batch: about 8,000 faults and +20% step time for gpt-tiny on
this machine. The simulator has no notion of allocation, and the microbenchmarks (which
loop on one shape) never fault, so measurements and runs are both taken with memory kept;
``allocator="default"`` measures the untuned behaviour.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fugaku_sim.errors import UserError

SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# glibc mallopt through the environment (mallopt(3)): serve large blocks from the heap and
# never trim it, so freed activations are reused instead of returned and faulted in again.
KEPT_MEMORY_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(2**30),
    "MALLOC_TRIM_THRESHOLD_": str(2**31),
    "MALLOC_TOP_PAD_": str(2**26),
}
ALLOCATORS = ("kept", "default")


def run_env(allocator: str = "kept") -> dict[str, str]:
    """The environment variables every launched rank gets (on top of ours)."""
    return {**SINGLE_THREAD_ENV, **(KEPT_MEMORY_ENV if allocator == "kept" else {})}


@dataclass(frozen=True)
class Launcher:
    """A launcher command template; ``{ranks}`` is replaced by the number of ranks."""

    template: tuple[str, ...]

    def command(self, ranks: int, argv: Sequence[str]) -> list[str]:
        head = [part.replace("{ranks}", str(ranks)) for part in self.template]
        return head + list(argv)

    def describe(self) -> str:
        return shlex.join(self.template)


def default_launcher() -> Launcher:
    """The venv's ``mpiexec -n {ranks}``, or the one on ``PATH``. Inside a Slurm job
    (``SLURM_JOB_ID`` set) MPICH's mpiexec would start its ranks through ``srun``, a new job
    step that waits for CPUs the running step holds (a hang); the ranks of these single-node
    measurements are then forked on this node (``-launcher fork``) instead.

    Raises:
        UserError: no ``mpiexec`` is found.
    """
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if not found:
        raise UserError(
            "--launcher: no mpiexec beside the Python or on PATH; install the 'mpi' extra "
            "(pip install mpich) or pass --launcher 'srun --mpi=pmi2 -n {ranks}'"
        )
    if os.environ.get("SLURM_JOB_ID"):
        return Launcher((found, "-launcher", "fork", "-n", "{ranks}"))
    return Launcher((found, "-n", "{ranks}"))


def parse_launcher(text: str | None) -> Launcher:
    """``--launcher`` text (shell words with ``{ranks}``) or the default.

    Raises:
        UserError: the template does not mention ``{ranks}``.
    """
    if not text:
        return default_launcher()
    parts = tuple(shlex.split(text))
    if not any("{ranks}" in p for p in parts):
        raise UserError(f"--launcher: {text!r} must contain {{ranks}}, e.g. 'mpiexec -n {{ranks}}'")
    return Launcher(parts)


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_mpi(
    launcher: Launcher,
    ranks: int,
    argv: Sequence[str],
    timeout_s: float,
    what: str,
    log: Path | None = None,
    allocator: str = "kept",
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` on ``ranks`` ranks and wait; stdout and stderr go to ``log`` if given.

    Raises:
        UserError: the launcher is missing, the run fails or exceeds ``timeout_s``; the
            message names ``what`` and the last line of its error output.
    """
    env = {**os.environ, **run_env(allocator)}
    cmd = launcher.command(ranks, argv)
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        raise UserError(f"{what}: cannot start {cmd[0]!r} (is MPI installed?)") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: did not finish within {timeout_s:.0f} s") from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}", encoding="utf-8")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise UserError(f"{what} on {ranks} ranks failed: {last}")
    return proc
