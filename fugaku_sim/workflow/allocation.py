"""The nodes the workflow's training run asks for, and how many of its ranks each one runs.

The run has ``train.ranks`` MPI ranks on ``train.cluster``. On a profile of one machine
(``allocation.max_nodes == 1``: a laptop, this machine) every rank runs on it, however many
cores it has: the node is oversubscribed rather than the run refused. Elsewhere each node
runs the profile's ``node.processes_per_node`` ranks and the last node may be part-filled.
A fixed layout that names its processes per node (``train.layout.processes_per_node``) is
taken at its word. The plan of the run (``--nodes``, ``--processes-per-node``), its layout
record (which the prediction reads) and the train job's resources (``nodes``) all take these
figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from fugaku_sim.spec import ClusterSpec


@dataclass(frozen=True)
class Allocation:
    """Nodes of a run and the ranks each runs (the last node may run fewer)."""

    nodes: int
    processes_per_node: int


def run_allocation(
    cluster: ClusterSpec, ranks: int, processes_per_node: int | None = None
) -> Allocation:
    """The allocation of a run of ``ranks`` ranks on ``cluster`` (see the module docstring);
    ``processes_per_node``: a fixed layout's, when it names them.

    Raises:
        ValueError: ``ranks`` is not positive (the workflow config forbids it).
    """
    if ranks < 1:
        raise ValueError(f"ranks must be positive, got {ranks}")
    if processes_per_node is not None:
        return Allocation(-(-ranks // processes_per_node), processes_per_node)
    if cluster.allocation.max_nodes == 1:
        return Allocation(1, ranks)
    per_node = cluster.node.processes_per_node
    return Allocation(-(-ranks // per_node), per_node)
