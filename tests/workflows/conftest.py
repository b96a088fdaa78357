"""Helpers for the execution-profile tests: run the tiny workflow through a profile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "workflows" / "profiles"
SCRIPTS = REPO / "workflows" / "scripts"
TINY = Path(__file__).resolve().parent / "tiny" / "Snakefile"
STANDINS = Path(__file__).resolve().parent / "standins"
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
# No virtual environment on PATH: the profiles and rules must not depend on it.
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The Slurm profile's launcher, set per MPI rule (see workflows/profiles/slurm/profile.yaml).
SRUN = "srun --mpi=pmi2"


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


def run_snakemake(workdir: Path, profile: str, *args: str, env: dict[str, str] | None = None,
                  timeout_s: int = 240) -> Run:
    """Run the venv's snakemake on the tiny workflow in ``workdir`` under ``timeout -k 10``.

    Snakemake ignores SIGTERM while jobs run, hence the kill after 10 s of grace.
    """
    command = ["timeout", "-k", "10", str(timeout_s), str(SNAKEMAKE), "-s", str(TINY),
               "-d", str(workdir), "--profile", str(PROFILES / profile), "--nocolor", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "VIRTUAL_ENV"))}
    full_env.update({"PATH": BARE_PATH, "OPENBLAS_NUM_THREADS": "1"})
    full_env.update(env or {})
    start = time.monotonic()
    done = subprocess.run(command, cwd=workdir, env=full_env, capture_output=True, text=True)
    return Run(done.returncode, done.stdout + done.stderr, time.monotonic() - start)


def assert_tiny_outputs(workdir: Path) -> None:
    import json

    assert (workdir / "results/tiny/summary.txt").read_text() == "total=55 ranks=2\n"
    assert json.loads((workdir / "results/tiny/mpi_sum.json").read_text())["ranks"] == 2
    for rule in ("make_numbers", "mpi_sum", "summarize"):
        assert (workdir / f"logs/tiny/{rule}.log").exists(), rule


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


# The main workflow (the top-level Snakefile) and its configs.
MAIN = REPO / "Snakefile"
CONFIGS = REPO / "workflows" / "config"


#: for runs that use no Slurm: the Slurm executor plugin asks ``scontrol show config`` when
#: Snakemake imports it, with a 10-s timeout, which a machine with the Slurm client installed
#: but no controller running waits out on every start
NO_SLURM = {"SLURM_CONF": "/dev/null"}


def workflow_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the venv on PATH or Snakemake's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEMAKE", "VIRTUAL_ENV"))}
    env.update({"PATH": BARE_PATH, "OPENBLAS_NUM_THREADS": "1"})
    env.update(extra or {})
    return env


def main_command(workdir: Path, *args: str, profile: str | None = None,
                 timeout_s: int = 300) -> list[str]:
    """``snakemake`` on the main workflow in ``workdir``, under ``timeout -k 10``."""
    chosen = ["--profile", str(PROFILES / profile)] if profile else []
    return ["timeout", "-k", "10", str(timeout_s), str(SNAKEMAKE), "-s", str(MAIN),
            "-d", str(workdir), *chosen, "--nocolor", *args]


def run_main(workdir: Path, *args: str, profile: str | None = None,
             env: dict[str, str] | None = None, timeout_s: int = 300) -> Run:
    """Run the main workflow in ``workdir`` (see :func:`main_command`); never raises on failure."""
    start = time.monotonic()
    done = subprocess.run(main_command(workdir, *args, profile=profile, timeout_s=timeout_s),
                          cwd=workdir, env=workflow_env(env), capture_output=True, text=True)
    return Run(done.returncode, done.stdout + done.stderr, time.monotonic() - start)
