"""How rules call the package: by the venv's interpreter, with one BLAS thread if asked."""

from __future__ import annotations

import subprocess
import sys

from conftest import BARE_PATH

from fugaku_sim.calibrate.launch import SINGLE_THREAD_ENV
from fugaku_sim.workflow.launch import cli_command, env_command, python_executable


def shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` through /bin/sh with no venv on PATH and no BLAS variables set."""
    env = {"PATH": BARE_PATH}
    return subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                          timeout=60)


def test_env_command_sets_the_variables_for_the_program_after_it() -> None:
    names = sorted(SINGLE_THREAD_ENV)
    probe = f"import os; print(*(os.environ.get(k, '-') for k in {names!r}))"
    plain = shell(f"{python_executable()} -c \"{probe}\"")
    assert plain.stdout.split() == ["-"] * len(names)  # not set by the test's environment
    done = shell(f"{env_command(SINGLE_THREAD_ENV)} {python_executable()} -c \"{probe}\"")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [SINGLE_THREAD_ENV[k] for k in names] == ["1"] * len(names)


def test_cli_command_runs_without_the_venv_on_path() -> None:
    for single_thread in (False, True):
        done = shell(f"{cli_command(single_thread=single_thread)} check --cluster local"
                     " --model gpt-micro --dp 2 --json")
        assert done.returncode == 0, done.stderr
        assert '"valid": true' in done.stdout
    assert cli_command().startswith(python_executable()) and sys.executable in cli_command()
