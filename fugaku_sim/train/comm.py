"""MPI communicators built from the shared rank groups, and the trainer's messages.

The groups come from :class:`fugaku_sim.parallel.RankGrid` (the same pure function the
simulator uses); here each becomes a communicator with ``Comm.Split`` (colour = the index of
the group, key = the rank's coordinate along the axis, so a rank's place in its communicator
is its tensor rank, stage or data rank). Buffer calls (``Allreduce``, ``Isend``, ``Recv``)
move numpy arrays without pickling.

mpi4py is imported inside the functions that need it, so the pure parts of the trainer run
without MPI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.parallel import RankCoords, RankGrid
from fugaku_sim.spec import Layout
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.timers import Timers


@dataclass
class ParallelComms:
    """This rank's place in the grid and its communicators.

    ``embed`` joins the first and last stage of this rank's pipeline (for the tied-embedding
    gradient, as Megatron's embedding group); it is None when pp = 1 or on middle stages.
    """

    world: Any  # MPI.Comm
    grid: RankGrid
    rank: int
    coords: RankCoords
    tp: Any
    pp: Any
    dp: Any
    embed: Any | None

    @property
    def pipeline_ranks(self) -> list[int]:
        """World ranks of this rank's pipeline group, by stage."""
        return self.grid.group(self.rank, "pp")


def _split(world: Any, grid: RankGrid, axis: str) -> Any:
    groups = grid.groups(axis)  # type: ignore[arg-type]
    colour = next(i for i, g in enumerate(groups) if world.rank in g)
    return world.Split(colour, getattr(grid.coords(world.rank), axis))


def build_comms(world: Any, layout: Layout) -> ParallelComms:
    """Split ``world`` into tensor, pipeline, data and embedding communicators (collective).

    Raises:
        ValueError: the layout's world size differs from the communicator's.
    """
    from mpi4py import MPI

    grid = layout.grid
    if grid.world != world.size:
        raise ValueError(f"layout needs {grid.world} ranks, the job has {world.size}")
    coords = grid.coords(world.rank)
    tp, pp, dp = (_split(world, grid, axis) for axis in ("tp", "pp", "dp"))
    in_embed = layout.pp > 1 and coords.pp in (0, layout.pp - 1)
    pipelines = grid.pipeline_groups()
    colour = next(i for i, g in enumerate(pipelines) if world.rank in g)
    embed = world.Split(colour if in_embed else MPI.UNDEFINED, coords.pp)
    return ParallelComms(world, grid, world.rank, coords, tp, pp, dp,
                         embed if in_embed else None)


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    return {"sum": MPI.SUM, "max": MPI.MAX}[op]


class TensorAllReduce:
    """The tensor-parallel all-reduce handed to the model functions (timed as ``tp_comm``).

    Reduces in place and returns the array; the identity on one rank.
    """

    def __init__(self, comm: Any, timers: Timers) -> None:
        self.comm = comm
        self.timers = timers
        self.size = comm.size if comm is not None else 1

    def __call__(self, x: np.ndarray, op: str) -> np.ndarray:
        if self.size == 1:
            return x
        from mpi4py import MPI

        with self.timers.region("tp_comm"):
            x = np.ascontiguousarray(x)
            self.comm.Allreduce(MPI.IN_PLACE, x, op=_mpi_op(op))
        return x


class PipelineLinks:
    """Point-to-point activations and gradients between pipeline stages.

    Sends are nonblocking (``Isend``) and completed at the end of the step: with blocking
    sends, 1F1B deadlocks once messages use MPI's rendezvous protocol (stage s sends a
    forward while stage s + 1 sends a backward), which is why Megatron-LM batches
    ``isend``/``irecv`` pairs. Receives block: ``Probe`` waits for the neighbour (timed as
    ``bubble``), then ``Recv`` moves the data (``pp_comm``). Messages between two ranks with
    the same tag never overtake each other (MPI), and every stage consumes them in schedule
    order, so a tag per (sender's virtual stage, direction) is enough.
    """

    def __init__(self, comm: Any, timers: Timers, memory: MemoryTracker | None = None) -> None:
        self.comm = comm
        self.timers = timers
        self.memory = memory or MemoryTracker(enabled=False)
        self._pending: list[tuple[Any, np.ndarray]] = []

    def send(self, x: np.ndarray, dest: int, tag: int) -> None:
        """Post the send of ``x``; its buffer is workspace until the send completes (sends
        that have completed are let go first, so only those in flight hold memory)."""
        with self.timers.region("pp_comm"):
            self._reap()
            buf = np.ascontiguousarray(x)
            self._pending.append((self.comm.Isend(buf, dest=dest, tag=tag), buf))
            self.memory.hold("workspace", ("message out", id(buf)), buf.nbytes)

    def recv(self, shape: tuple[int, ...], dtype: Any, source: int, tag: int) -> np.ndarray:
        with self.timers.region("bubble"):
            self.comm.Probe(source=source, tag=tag)
        with self.timers.region("pp_comm"):
            buf = np.empty(shape, dtype=dtype)
            self.comm.Recv(buf, source=source, tag=tag)
            self._reap()
        return buf

    def _reap(self) -> None:
        done = [(r, b) for r, b in self._pending if r.Test()]
        self._pending = [(r, b) for r, b in self._pending if all(r is not d for d, _ in done)]
        for _, b in done:
            self.memory.drop(("message out", id(b)))

    def wait_all(self) -> None:
        """Complete every send posted so far."""
        from mpi4py import MPI

        with self.timers.region("pp_comm"):
            MPI.Request.Waitall([r for r, _ in self._pending])
            for _, b in self._pending:
                self.memory.drop(("message out", id(b)))
            self._pending.clear()
