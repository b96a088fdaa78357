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
   two rank counts);
4. ``compute`` again. The compute suite runs twice, first and last, each with loops half
   their length (the same time in all), and the profile keeps the quieter of the two
   (:func:`quieter_compute`): on a shared host the other tenants come in bursts that
   ``/proc/stat`` does not see, and one calibration in five on such a host ran its whole
   35-s compute suite in one (its kernels 1.39x and its tiny numpy calls 1.49x the other
   four's, GEMMs 1.08x: every run predicted 20-30% slow). Two halves half a minute apart
   both land in a burst far less often than one whole.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from fugaku_sim.calibrate.contention import measure_quietly
from fugaku_sim.calibrate.launch import Launcher, python_module, run_mpi
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object

BENCH_MODULE = "fugaku_sim.calibrate.bench"
COMPUTE_RUNS = 2  # launches of the compute suite, spread over the calibration
# what a compute row holds besides its timing (the case it times)
_TIMING_KEYS = {"seconds", "seconds_per_rank", "lone_seconds"}
_COMPUTE_SECTIONS = ("gemm", "stream", "tiny_ops", "kernels", "optimizer")

Progress = Callable[[str], None]


def planned_runs(ranks: int) -> list[tuple[str, int]]:
    """(suite, ranks) of every launch, in order.

    >>> planned_runs(2)
    [('compute', 2), ('share', 2), ('share', 4), ('comm', 2), ('comm', 4), ('compute', 2)]
    """
    over = 2 * ranks
    return [("compute", ranks), ("share", ranks), ("share", over), ("comm", ranks),
            ("comm", over), ("compute", ranks)]


def run_suite(
    launcher: Launcher, suite: str, ranks: int, quick: bool, workdir: Path, timeout_s: float,
    allocator: str = "kept", budget_fraction: float = 1.0, tag: str = "",
) -> dict[str, Any]:
    """Launch one suite (its timed loops ``budget_fraction`` of their usual length) and
    return the JSON its rank 0 wrote (``tag`` tells two launches of one suite apart).

    Raises:
        UserError: the launch fails (from :func:`run_mpi`).
    """
    name = f"{suite}-{ranks}{tag}"
    out = workdir / f"{name}.json"
    argv = python_module(BENCH_MODULE, suite, "--out", str(out),
                         *(["--quick"] if quick else []),
                         *(["--budget-fraction", str(budget_fraction)]
                           if budget_fraction != 1.0 else []))
    run_mpi(launcher, ranks, argv, timeout_s, f"calibrate: {suite} benchmark",
            log=workdir / f"{name}.log", allocator=allocator)
    return read_json_object(out, f"calibrate: the {suite} benchmark's result {out}",
                            f"see {workdir / f'{name}.log'}")


def _case(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _TIMING_KEYS}


def compute_speed_ratio(first: dict[str, Any], last: dict[str, Any]) -> float:
    """How much slower the ``last`` compute suite ran than the ``first``: the median over
    every row both timed of its seconds in ``last`` over its seconds in ``first`` (above 1:
    ``last`` was slower).

    Raises:
        UserError: the two did not time the same cases.
    """
    ratios = []
    for section in _COMPUTE_SECTIONS:
        a, b = first.get(section) or [], last.get(section) or []
        if len(a) != len(b) or any(_case(x) != _case(y) for x, y in zip(a, b)):
            raise UserError(f"calibrate: the two compute suites timed different {section} "
                            "cases; re-run calibrate")
        ratios += [y["seconds"] / x["seconds"] for x, y in zip(a, b) if x["seconds"] > 0]
    if not ratios:
        raise UserError("calibrate: the compute suites timed nothing; re-run calibrate")
    return statistics.median(ratios)


def quieter_compute(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The compute suite a profile keeps out of its launches (:data:`COMPUTE_RUNS`, in
    order): the fastest, by :func:`compute_speed_ratio` against the first, so that one
    launch run whole in a burst of the host's other tenants is left out. Returns it and a
    record of the choice (each launch's speed relative to the first, its wall time, which
    was kept).

    >>> row = lambda s: {"op": "x", "seconds": s}
    >>> kept, how = quieter_compute([{"tiny_ops": [row(2.0)]}, {"tiny_ops": [row(1.5)]}])
    >>> kept["tiny_ops"][0]["seconds"], how["kept"], how["time_vs_first"]
    (1.5, 2, [1.0, 0.75])
    """
    ratios = [1.0] + [compute_speed_ratio(runs[0], r) for r in runs[1:]]
    best = min(range(len(runs)), key=lambda i: ratios[i])
    return runs[best], {"launches": len(runs), "kept": best + 1, "time_vs_first": ratios,
                        "wall_s": [r.get("wall_s") for r in runs]}


def measure_machine(
    launcher: Launcher,
    ranks: int,
    quick: bool,
    progress: Progress | None = None,
    timeout_s: float = 300.0,
    allocator: str = "kept",
    attempts: int = 1,
) -> dict[str, Any]:
    """All suites; returns ``{"compute": {...}, "compute_choice": {...}, "share": [..],
    "comm": [..], "machine": [..]}`` (``compute`` the quieter launch, :func:`quieter_compute`,
    ``compute_choice`` its record); a suite measured while other work took more than
    a tenth of the machine is measured again, ``attempts`` times at most
    (:func:`~fugaku_sim.calibrate.contention.measure_quietly`; ``machine`` holds each
    suite's figures).

    Raises:
        UserError: a launch fails.
    """
    result: dict[str, Any] = {"ranks": ranks, "quick": quick, "allocator": allocator,
                              "share": [], "comm": [], "machine": []}
    computes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fugaku-calibrate-") as tmp:
        for suite, n in planned_runs(ranks):
            compute = suite == "compute"
            if progress:
                progress(f"{suite} on {n} ranks"
                         + (f" ({len(computes) + 1} of {COMPUTE_RUNS})" if compute else ""))
            rows, machine = measure_quietly(
                partial(run_suite, launcher, suite, n, quick, Path(tmp), timeout_s, allocator,
                        1.0 / COMPUTE_RUNS if compute else 1.0,
                        f"-{len(computes) + 1}" if compute else ""),
                attempts)
            result["machine"].append({"suite": suite, "ranks": n, **machine})
            if compute:
                computes.append(rows)
            else:
                result[suite].append(rows)
    result["compute"], result["compute_choice"] = quieter_compute(computes)
    return result
