"""Shared fixtures: paths of the repository and a way to run the CLI in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tests run single-threaded BLAS so that MPI ranks spawned from them do not oversubscribe
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``fugaku-sim`` in-process; returns (exit status, stdout, stderr)."""
    from fugaku_sim.cli import main

    def _run(*argv: str) -> tuple[int, str, str]:
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            status = int(exc.code or 0)
        out = capsys.readouterr()
        return status, out.out, out.err

    return _run
