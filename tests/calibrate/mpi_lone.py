"""The compute suite's lone rounds over real MPI, checked on every rank.

Usage: ``mpiexec -n N python tests/calibrate/mpi_lone.py`` (N = 1, 2, 4; run by
``test_bench.py``). :func:`~fugaku_sim.calibrate.bench.time_cases` with ``lone``:

- on one rank there is no lone round (a lone process is every process): no ``lone_seconds``;
- on more, every rank returns the same ``lone_seconds`` (rank 0's), and only rank 0 calls the
  op in the lone rounds: it makes ``trials x reps`` more calls than every other rank, which
  make the same number as each other (they rest, not compute, while rank 0 is alone);
- the share suite's interleaved trials (every rank busy, then the upper half asleep) give
  every rank the same positive times on two or more ranks, and none on one.

Exits non-zero (an uncaught assertion on some rank aborts the job) on any mismatch.
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> int:
    from mpi4py import MPI

    from fugaku_sim.calibrate.bench import Case, bench_share, time_cases

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    a = np.ones((64, 64), np.float32)
    calls = [0]

    def op() -> None:
        calls[0] += 1
        a @ a

    trials = 3
    (row,) = time_cases(comm, [Case({"section": "gemm"}, op)], budget_s=0.03, trials=trials,
                        lone=True)
    every = comm.allgather(calls[0])
    if size == 1:
        assert "lone_seconds" not in row, row
    else:
        lone = comm.allgather(row["lone_seconds"])
        assert len(set(lone)) == 1 and lone[0] > 0, lone
        rest = every[1:]
        assert len(set(rest)) == 1, every  # the resting ranks made the same calls
        extra = every[0] - rest[0]
        assert extra > 0 and extra % trials == 0, every  # trials lone loops of equal reps
    share = bench_share(comm, 0.03)
    keys = ("interleaved_all_busy_seconds", "half_asleep_seconds")
    if size == 1:
        assert not any(k in share for k in keys), share
    else:
        got = comm.allgather(tuple(share[k] for k in keys))
        assert len(set(got)) == 1 and min(got[0]) > 0, got
    if rank == 0:
        print(f"passed on {size} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
