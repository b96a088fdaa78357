"""Run the microbenchmark suites on the machine at hand and collect their raw rows.

One call of :func:`measure_machine` launches, each as its own MPI job:

1. ``compute`` on ``ranks`` ranks (one per core: the per-process share with all cores busy;
   each round of its trials also times rank 0 alone while the others sleep, since a lone
   process may run faster: shared caches, SMT, boost clock. Measured in the same seconds as
   the busy loops, the ratio is not moved by the machine's drift, which made a separate
   one-rank job's ratio swing from 0.78 to 1.20 over three calibrations of one quiet
   machine);
2. ``share`` on ``ranks`` and on ``2 x ranks`` ranks (what oversubscribing the cores costs,
   and whether ranks that wait in MPI keep their core busy);
3. ``comm`` on ``ranks`` and ``2 x ranks`` ranks (ping-pong and all-reduce over sizes and
   two rank counts).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from fugaku_sim.calibrate.contention import measure_quietly
from fugaku_sim.calibrate.launch import Launcher, python_module, run_mpi
from fugaku_sim.io import read_json_object

BENCH_MODULE = "fugaku_sim.calibrate.bench"

Progress = Callable[[str], None]


def planned_runs(ranks: int) -> list[tuple[str, int]]:
    """(suite, ranks) of every launch, in order.

    >>> planned_runs(2)
    [('compute', 2), ('share', 2), ('share', 4), ('comm', 2), ('comm', 4)]
    """
    over = 2 * ranks
    return [("compute", ranks), ("share", ranks), ("share", over), ("comm", ranks),
            ("comm", over)]


def run_suite(
    launcher: Launcher, suite: str, ranks: int, quick: bool, workdir: Path, timeout_s: float,
    allocator: str = "kept",
) -> dict[str, Any]:
    """Launch one suite and return the JSON its rank 0 wrote.

    Raises:
        UserError: the launch fails (from :func:`run_mpi`).
    """
    out = workdir / f"{suite}-{ranks}.json"
    argv = python_module(BENCH_MODULE, suite, "--out", str(out), *(["--quick"] if quick else []))
    run_mpi(launcher, ranks, argv, timeout_s, f"calibrate: {suite} benchmark",
            log=workdir / f"{suite}-{ranks}.log", allocator=allocator)
    return read_json_object(out, f"calibrate: the {suite} benchmark's result {out}",
                            f"see {workdir / f'{suite}-{ranks}.log'}")


def measure_machine(
    launcher: Launcher,
    ranks: int,
    quick: bool,
    progress: Progress | None = None,
    timeout_s: float = 300.0,
    allocator: str = "kept",
    attempts: int = 1,
) -> dict[str, Any]:
    """All suites; returns ``{"compute": {...}, "share": [..],
    "comm": [..], "machine": [..]}``; a suite measured while other work took more than
    a tenth of the machine is measured again, ``attempts`` times at most
    (:func:`~fugaku_sim.calibrate.contention.measure_quietly`; ``machine`` holds each
    suite's figures).

    Raises:
        UserError: a launch fails.
    """
    result: dict[str, Any] = {"ranks": ranks, "quick": quick, "allocator": allocator,
                              "share": [], "comm": [], "machine": []}
    with tempfile.TemporaryDirectory(prefix="fugaku-calibrate-") as tmp:
        for suite, n in planned_runs(ranks):
            if progress:
                progress(f"{suite} on {n} ranks")
            rows, machine = measure_quietly(
                partial(run_suite, launcher, suite, n, quick, Path(tmp), timeout_s, allocator),
                attempts)
            result["machine"].append({"suite": suite, "ranks": n, **machine})
            if suite == "compute":
                result["compute"] = rows
            else:
                result[suite].append(rows)
    return result
