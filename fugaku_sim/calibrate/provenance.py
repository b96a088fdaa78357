"""Where and how a calibration was taken: date, host, CPU, library versions, load, command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import socket
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_clock_GHz() -> float | None:
    """Clock the OS reports for the first CPU (``cpu MHz``), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) / 1000.0
    except (OSError, ValueError):
        pass
    return None


def mem_total_GiB() -> float | None:
    """``MemTotal`` of ``/proc/meminfo`` in GiB, or None."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 2**30
    except (OSError, ValueError, IndexError):
        pass
    return None


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), else the CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def blas_description() -> str:
    """numpy's BLAS name and version (numpy >= 2 reports them as a mapping)."""
    import numpy as np

    try:
        cfg: Any = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # noqa: BLE001 - older numpy: no mode argument
        return "unknown"


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (the machine may be shared)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Everything needed to say where a measurement came from (JSON-ready)."""
    import numpy as np

    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "cpu_MHz_reported": (c * 1000 if (c := cpu_clock_GHz()) else None),
        "mem_total_GiB": mem_total_GiB(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas_description(),
        "command": shlex.join(argv if argv is not None else sys.argv),
        "load_average_start": load_average(),
    }
