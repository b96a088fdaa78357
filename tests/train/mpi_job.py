"""Running the trainer under ``mpiexec`` from tests, and reading what a run leaves behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=str(VENV_BIN)) or shutil.which("mpiexec")
RUNS = Path(__file__).with_name("mpi_runs.py")


def env() -> dict[str, str]:
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))


def mpirun(n: int, commands: list[list[str]], timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    """Run fugaku-sim commands one after another in one ``mpiexec -n n`` job."""
    cmd = [str(MPIEXEC), "-n", str(n), sys.executable, str(RUNS), json.dumps(commands)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(),
                          cwd=REPO)


def cli(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """One fugaku-sim command as a single process (an MPI singleton)."""
    return subprocess.run([sys.executable, "-m", "fugaku_sim.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env(), cwd=REPO)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def grad_norms(out: Path) -> list[float]:
    return [json.loads(line)["grad_norm"]
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict[str, np.ndarray]:
    from fugaku_sim.tensors.consolidated import read_consolidated

    return read_consolidated(out / "model.safetensors")[1]


def layout_args(tp: int, pp: int, dp: int) -> list[str]:
    return ["--tp", str(tp), "--pp", str(pp), "--dp", str(dp)]
