"""Sum the numbers in a file over MPI: each rank sums every size-th line, then Allreduce.

usage: python mpi_sum.py NUMBERS OUT_JSON   (under mpiexec/srun with any number of ranks)
"""

import json
import socket
import sys

from mpi4py import MPI


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python mpi_sum.py NUMBERS OUT_JSON", file=sys.stderr)
        return 2
    comm = MPI.COMM_WORLD
    with open(argv[0]) as f:
        numbers = [int(line) for line in f if line.strip()]
    part = sum(numbers[comm.rank :: comm.size])
    total = comm.allreduce(part, op=MPI.SUM)
    hosts = comm.gather(socket.gethostname(), root=0)
    if comm.rank == 0:
        with open(argv[1], "w") as f:
            json.dump({"ranks": comm.size, "total": total, "hosts": hosts}, f)
    print(f"rank {comm.rank}/{comm.size}: part {part}, total {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
