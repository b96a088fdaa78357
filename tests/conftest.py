"""Shared fixtures: paths of the repository and a way to run the CLI in-process."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Generator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tests run single-threaded BLAS so that MPI ranks spawned from them do not oversubscribe
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: the bar every hand-written hostile-input case meets: refused (or accepted) within this
#: many seconds of work, its own and its child processes' (CPU time: wall time on a shared
#: machine stretches with everyone else's load, up to 3x on two cores at load 7)
HOSTILE_CASE_CPU_S = 10.0
#: and within this many seconds of wall time, whatever the load: a case that waits (a rank
#: left in a collective, a pipe opened for reading) uses no CPU but would pass the bar above
HOSTILE_CASE_WALL_S = 60.0


def _cpu_s() -> float:
    """CPU seconds of this process and of every child process it has waited for (an
    mpiexec and its ranks, a snakemake run)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a ``hostile`` case above :data:`HOSTILE_CASE_CPU_S` or
    :data:`HOSTILE_CASE_WALL_S` (its call; shared fixtures such as a built release are set
    up once, apart)."""
    wall, cpu = time.monotonic(), _cpu_s()
    result = yield
    wall, cpu = time.monotonic() - wall, _cpu_s() - cpu
    if item.get_closest_marker("hostile") is None:
        return result
    item.user_properties.append(("hostile_s", (cpu, wall)))
    if cpu > HOSTILE_CASE_CPU_S or wall > HOSTILE_CASE_WALL_S:
        pytest.fail(f"a hostile-input case took {cpu:.1f} CPU-s and {wall:.1f} s of wall time "
                    f"(bars {HOSTILE_CASE_CPU_S:g} and {HOSTILE_CASE_WALL_S:g}; load "
                    f"{os.getloadavg()[0]:.1f})")
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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The ten hostile-input cases that took longest, in CPU and wall seconds, with the load."""
    timed = [(dict(r.user_properties)["hostile_s"], r.nodeid)
             for reports in terminalreporter.stats.values() for r in reports
             if isinstance(r, pytest.TestReport) and r.when == "call"
             and "hostile_s" in dict(r.user_properties)]
    if not timed:
        return
    terminalreporter.section(f"slowest hostile-input cases of {len(timed)} (load "
                             f"{os.getloadavg()[0]:.1f})")
    for (cpu, wall), nodeid in sorted(timed, reverse=True, key=lambda x: x[0][1])[:10]:
        terminalreporter.write_line(f"{wall:6.2f} s wall {cpu:6.2f} CPU-s  {nodeid}")
