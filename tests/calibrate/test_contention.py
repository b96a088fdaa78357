"""The foreign CPU share: parsing /proc/stat, the arithmetic, and a real busy neighbour."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fugaku_sim.calibrate.contention import (
    QUIET_SHARE,
    CpuWatch,
    foreign_share,
    is_quiet,
    machine_busy_s,
)

linux = pytest.mark.skipif(machine_busy_s() is None, reason="no /proc/stat")


def test_busy_columns_leave_out_idle_iowait_and_guest(tmp_path: Path) -> None:
    import os

    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 10 50 9000 400 5 5 30 77 7\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert machine_busy_s(stat) == pytest.approx(200 / os.sysconf("SC_CLK_TCK"))
    stat.write_text("intr 1 2 3\n")
    assert machine_busy_s(stat) is None
    assert machine_busy_s(tmp_path / "missing") is None


@pytest.mark.parametrize(("busy", "own", "wall", "cores", "want"), [
    (2.0, 2.0, 1.0, 2, 0.0),     # all of it ours
    (2.0, 1.0, 1.0, 2, 0.5),     # a neighbour took one core of two
    (0.9, 1.0, 1.0, 2, 0.0),     # tick accounting below ours: clipped
    (9.0, 0.0, 1.0, 2, 1.0),     # above capacity: clipped
    (1.0, 0.0, 0.0, 2, 0.0),     # no time passed
])
def test_foreign_share(busy: float, own: float, wall: float, cores: int, want: float) -> None:
    assert foreign_share(busy, own, wall, cores) == pytest.approx(want)


def test_quiet() -> None:
    assert is_quiet(None) and is_quiet(0.0) and is_quiet(QUIET_SHARE)
    assert not is_quiet(QUIET_SHARE + 0.01)


@linux
def test_a_busy_process_that_is_not_ours_is_foreign() -> None:
    """A spinning process not waited for inside the block is other work; once waited for,
    a child's CPU time counts as ours (as validate's ranks do)."""
    spin = [sys.executable, "-c", "while True: pass"]
    neighbour = subprocess.Popen(spin)
    try:
        time.sleep(0.3)  # started and spinning
        with CpuWatch() as watch:
            time.sleep(1.0)
    finally:
        neighbour.kill()
        neighbour.wait()
    share = watch.figures()["foreign_cpu_share"]
    # one spinning process on C cores is 1/C of the machine (less if descheduled)
    assert share >= 0.5 / (watch.cores or 1)

    with CpuWatch() as mine:
        subprocess.run([sys.executable, "-c",
                        "import time\nt=time.process_time()\n"
                        "while time.process_time()-t<0.8: pass"], check=True)
    figures = mine.figures()
    # the child's 0.8 CPU-s, once waited for, are ours (however long a busy machine took)
    assert figures["own_cores"] * figures["wall_s"] >= 0.7
    # (its foreign share is whatever else the machine ran meanwhile: not asserted)


def test_figures_before_the_block_ends() -> None:
    with pytest.raises(RuntimeError):
        CpuWatch().figures()


def test_a_contended_measurement_is_taken_again_and_the_last_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fugaku_sim.calibrate import contention

    shares = iter([0.6, 0.3, 0.05, 0.9])
    waits: list[float] = []
    monkeypatch.setattr(contention.CpuWatch, "figures",
                        lambda self: {"foreign_cpu_share": next(shares)})
    monkeypatch.setattr(contention, "wait_for_quiet", lambda s: waits.append(s) or True)
    calls = iter(range(10))
    result, figures = contention.measure_quietly(lambda: next(calls), attempts=5, settle_s=7)
    assert result == 2  # the third run was quiet: no fourth
    assert figures["attempts"] == 3 and figures["foreign_cpu_shares"] == [0.6, 0.3, 0.05]
    assert waits == [7, 7]

    shares = iter([0.6, 0.5])
    result, figures = contention.measure_quietly(lambda: next(calls), attempts=2)
    assert (result, figures["attempts"], figures["foreign_cpu_share"]) == (4, 2, 0.5)


@linux
def test_waiting_for_quiet_gives_up_after_its_time() -> None:
    spin = [sys.executable, "-c", "while True: pass"]
    import os

    # a spinning process per core: the machine is busy whatever its size
    neighbours = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
    try:
        t0 = time.monotonic()
        settled = contention_wait(0.5)
        took = time.monotonic() - t0
    finally:
        for p in neighbours:
            p.kill()
            p.wait()
    assert not settled
    assert 0.5 <= took < 5.0


def contention_wait(max_s: float) -> bool:
    from fugaku_sim.calibrate.contention import wait_for_quiet

    return wait_for_quiet(max_s, window_s=0.25)
