"""How much of the machine other work took while we measured.

A prediction is for a dedicated machine; a measurement taken while other processes (or, in
a virtual machine, other tenants: the hypervisor's *steal* time) compete for the cores says
how the job ran on a shared one. Calibration and validation therefore record, around every
measurement, the **foreign CPU share**: the busy CPU time of the whole machine (Linux
``/proc/stat``: user, nice, system, irq, softirq and steal) minus the CPU time of this
process and the children it waited for (``getrusage``; MPI ranks are children of the
launcher, which is ours), over the cores times the wall time. 0 is a quiet machine; 0.5
means other work used half of it.

A comparison of predicted and measured step time is only meaningful on a quiet machine, so
validate reports its error figures over all runs and over the quiet ones (share at or
below :data:`QUIET_SHARE`), and calibrate warns when its measurements were contended.
Both retry a contended measurement (:func:`measure_quietly`): on a shared machine other work
comes and goes, and a measurement repeated once the machine has settled shows the machine
rather than its neighbours (five calibrations in a row then agree with each other).

Off Linux (no ``/proc/stat``) the share is unknown (None).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

MACHINE_FILE = "machine.json"  # a validate run's figures, beside its summary.json
QUIET_SHARE = 0.10  # foreign share at or below which a measurement counts as quiet

# /proc/stat cpu columns (proc(5)): user nice system idle iowait irq softirq steal guest
# guest_nice; guest time is already counted in user, so it is not added again
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def machine_busy_s(stat: Path = Path("/proc/stat")) -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), or None off Linux."""
    try:
        first = stat.read_text(encoding="ascii").splitlines()[0].split()
        ticks = [int(first[1 + i]) for i in _BUSY_COLUMNS if 1 + i < len(first)]
    except (OSError, IndexError, ValueError):
        return None
    if first[0] != "cpu":
        return None
    return sum(ticks) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds (user + system) of this process and of the children it waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def foreign_share(busy_s: float, own_s: float, wall_s: float, cores: int) -> float:
    """Fraction of ``cores`` x ``wall_s`` that other work was busy: (busy - own) / capacity,
    clipped to [0, 1] (the kernel's tick accounting and ours disagree by a tick or two).

    >>> foreign_share(busy_s=3.0, own_s=1.0, wall_s=2.0, cores=2)
    0.5
    """
    if wall_s <= 0 or cores <= 0:
        return 0.0
    return min(1.0, max(0.0, (busy_s - own_s) / (cores * wall_s)))


class CpuWatch:
    """Context manager: the foreign CPU share over its body.

    >>> with CpuWatch() as watch:
    ...     pass
    >>> sorted(watch.figures())
    ['foreign_cpu_share', 'load_average', 'own_cores', 'wall_s']
    """

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self._start: tuple[float, float | None, float] | None = None
        self._end: tuple[float, float | None, float] | None = None

    @staticmethod
    def _now() -> tuple[float, float | None, float]:
        return time.perf_counter(), machine_busy_s(), own_cpu_s()

    def __enter__(self) -> CpuWatch:
        self._start = self._now()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._end = self._now()

    def figures(self) -> dict[str, Any]:
        """``wall_s``, ``own_cores`` (CPU time of ours / wall), ``foreign_cpu_share`` (None
        when unknown) and the 1-minute ``load_average`` at the end."""
        if self._start is None or self._end is None:
            raise RuntimeError("CpuWatch.figures() before the block ended")
        (t0, b0, o0), (t1, b1, o1) = self._start, self._end
        wall = t1 - t0
        share = (None if b0 is None or b1 is None
                 else round(foreign_share(b1 - b0, o1 - o0, wall, self.cores), 4))
        return {"wall_s": round(wall, 3),
                "own_cores": round((o1 - o0) / wall, 3) if wall > 0 else 0.0,
                "foreign_cpu_share": share,
                "load_average": round(os.getloadavg()[0], 2)}


def is_quiet(share: float | None) -> bool:
    """Whether a measurement with this foreign share counts as quiet (unknown counts)."""
    return share is None or share <= QUIET_SHARE


def wait_for_quiet(max_wait_s: float, window_s: float = 1.0) -> bool:
    """Sleep in ``window_s`` windows until one is quiet or ``max_wait_s`` has passed;
    whether the machine settled (True off Linux: nothing to wait for)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        with CpuWatch() as watch:
            time.sleep(window_s)
        if is_quiet(watch.figures()["foreign_cpu_share"]):
            return True
        if time.monotonic() >= deadline:
            return False


def measure_quietly(
    measure: Callable[[], T], attempts: int, settle_s: float = 10.0,
) -> tuple[T, dict[str, Any]]:
    """Run ``measure`` and, while other work took more than :data:`QUIET_SHARE` of the
    machine, wait up to ``settle_s`` for it to settle and run it again, ``attempts`` times in
    all; the last result stands. Returns it with its :class:`CpuWatch` figures plus
    ``attempts`` (how many runs) and ``foreign_cpu_shares`` (each run's share).

    >>> result, figures = measure_quietly(lambda: 42, attempts=1)
    >>> result, figures["attempts"]
    (42, 1)
    """
    shares: list[float | None] = []
    attempt = 0
    while True:
        attempt += 1
        with CpuWatch() as watch:
            result = measure()
        figures = watch.figures()
        shares.append(figures["foreign_cpu_share"])
        if is_quiet(shares[-1]) or attempt >= attempts:
            return result, {**figures, "attempts": attempt, "foreign_cpu_shares": shares}
        wait_for_quiet(settle_s)
