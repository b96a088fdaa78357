"""Run several ``fugaku-sim`` commands one after another in one MPI job.

Usage: ``mpiexec -n N python tests/train/mpi_runs.py '[["train", ...], ["train", ...]]'``.
Spawning one MPI job per command costs a start-up each; the tests batch commands of the same
rank count. Exits with the first non-zero status.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from fugaku_sim.cli import main as cli_main

    for argv in json.loads(sys.argv[1]):
        status = cli_main(argv)
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
