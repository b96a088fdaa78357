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
   their length, and the profile takes each figure from both (:func:`pooled_compute`): on a
   shared host the other tenants come in bursts that ``/proc/stat`` does not see, and one
   calibration in five on such a host ran its whole 35-s compute suite in one (its kernels
   1.39x and its tiny numpy calls 1.49x the other four's, GEMMs 1.08x: every run predicted
   20-30% slow). Two launches half a minute apart sample two states of the host. Keeping
   the faster one instead was tried and measured: the second launch was the faster in five
   calibrations of five (0.82-0.97 of the first's time), so the profile kept the host's
   better moments, which the runs it predicts do not get.
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


def pooled_compute(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One compute suite from its launches (in order, :func:`planned_runs`): each row's
    seconds (per rank, and alone) the geometric mean of its launches', so a launch run
    whole in a burst counts for its share and no more. Returns the pooled suite (the first
    launch's other fields) and a record: each launch's time against the first
    (:func:`compute_speed_ratio`), its wall time and its rows.

    >>> row = lambda s: {"op": "x", "seconds": s}
    >>> pooled, how = pooled_compute([{"tiny_ops": [row(2.0)]}, {"tiny_ops": [row(0.5)]}])
    >>> pooled["tiny_ops"][0]["seconds"], how["time_vs_first"]
    (1.0, [1.0, 0.25])
    """
    ratios = [1.0] + [compute_speed_ratio(runs[0], r) for r in runs[1:]]
    pooled = {k: v for k, v in runs[0].items() if k not in _COMPUTE_SECTIONS}
    for section in _COMPUTE_SECTIONS:
        if section not in runs[0]:
            continue
        rows = []
        for launch_rows in zip(*(r[section] for r in runs)):
            row = dict(launch_rows[0])
            for key in _TIMING_KEYS & row.keys():
                values = [x[key] for x in launch_rows]
                row[key] = ([_geomean(v) for v in zip(*values)] if isinstance(values[0], list)
                            else _geomean(values))
            rows.append(row)
        pooled[section] = rows
    return pooled, {"launches": len(runs), "pooled": "geometric mean of each row",
                    "time_vs_first": ratios, "wall_s": [r.get("wall_s") for r in runs],
                    "rows": [{k: r[k] for k in _COMPUTE_SECTIONS if k in r} for r in runs]}


def _geomean(values: Any) -> float:
    return float(statistics.geometric_mean(values)) if all(v > 0 for v in values) else float(
        statistics.fmean(values))


def measure_machine(
    launcher: Launcher,
    ranks: int,
    quick: bool,
    progress: Progress | None = None,
    timeout_s: float = 300.0,
    allocator: str = "kept",
    attempts: int = 1,
) -> dict[str, Any]:
    """All suites; returns ``{"compute": {...}, "compute_launches": {...}, "share": [..],
    "comm": [..], "machine": [..]}`` (``compute`` pooled from its launches,
    :func:`pooled_compute`, ``compute_launches`` their record); a suite measured while other work took more than
    a tenth of the machine is measured again, ``attempts`` times at most
    (:func:`~fugaku_sim.calibrate.contention.measure_quietly`; ``machine`` holds each
    suite's figures).

    Raises:
        UserError: a launch fails.
    """
    result: dict[str, Any] = {"ranks": ranks, "quick": quick, "allocator": allocator,
                              "share": [], "comm": [], "machine": []}
    computes: list[dict[str, Any]] = []
    plan = planned_runs(ranks)
    launches = sum(suite == "compute" for suite, _ in plan)  # each this share of the time
    with tempfile.TemporaryDirectory(prefix="fugaku-calibrate-") as tmp:
        for suite, n in plan:
            compute = suite == "compute"
            if progress:
                progress(f"{suite} on {n} ranks"
                         + (f" ({len(computes) + 1} of {launches})" if compute else ""))
            rows, machine = measure_quietly(
                partial(run_suite, launcher, suite, n, quick, Path(tmp), timeout_s, allocator,
                        1.0 / launches if compute else 1.0,
                        f"-{len(computes) + 1}" if compute else ""),
                attempts)
            result["machine"].append({"suite": suite, "ranks": n, **machine})
            if compute:
                computes.append(rows)
            else:
                result[suite].append(rows)
    result["compute"], result["compute_launches"] = pooled_compute(computes)
    return result
