"""Shared fixtures: paths of the repository and a way to run the CLI in-process."""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tests run single-threaded BLAS so that MPI ranks spawned from them do not oversubscribe
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: the bar every hand-written hostile-input case meets: refused (or accepted) within this
#: many seconds of wall time (its call; shared fixtures such as a built release are set up
#: once, apart)
HOSTILE_CASE_LIMIT_S = 10.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a ``hostile`` case that took longer than :data:`HOSTILE_CASE_LIMIT_S`."""
    start = time.monotonic()
    result = yield
    took = time.monotonic() - start
    if item.get_closest_marker("hostile") is not None and took > HOSTILE_CASE_LIMIT_S:
        pytest.fail(f"a hostile-input case took {took:.1f} s, above the "
                    f"{HOSTILE_CASE_LIMIT_S:g} s bar (load {os.getloadavg()[0]:.1f})")
    return result


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
