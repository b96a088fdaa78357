"""Allocation: how a job asks the batch system for its nodes, and the network that gives it.

Kinds (``JobAllocation.kind``):

``torus``
    A block of whole allocation units in a virtual shape (``pjsub -L node=48x6x48:torus``),
    each virtual axis folding physical dimensions (:class:`fugaku_sim.sim.topology.Torus`).
    A one-axis shape (``node=512:torus``) is a snake through the smallest block of whole
    units holding the nodes (:func:`fugaku_sim.sim.noncont.block_snake_network`).
``noncont``
    A node count placed wherever nodes are free (``node=64:noncont``), allowed only where a
    resource group of the profile takes that many nodes non-contiguously (Fugaku: up to 384;
    user guide, "Usage rule" 3.4.1); see :mod:`fugaku_sim.sim.noncont`.
``switched``
    A fat-tree cluster: any nodes (:class:`fugaku_sim.sim.topology.Switched`).

When the layout names neither a shape nor a kind, the tool chooses what a planner would ask
for: a torus shape of whole units if one holds the node count exactly (the best by
:func:`shape_score`), else ``noncont`` where a resource group allows it, else a one-axis
torus. A one-axis ``job_shape`` without a kind means what ``node=N`` means to pjsub: the
default method of the first resource group that takes N nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from fugaku_sim.errors import SpecError
from fugaku_sim.parallel.placement import job_shapes, node_split
from fugaku_sim.sim.noncont import block_snake_network, noncont_network
from fugaku_sim.sim.topology import Network, build_network, diameter_hops, job_block
from fugaku_sim.spec.cluster import ClusterSpec, TorusInterconnect
from fugaku_sim.spec.job import Job

Kind = Literal["torus", "noncont", "switched"]


@dataclass(frozen=True)
class JobAllocation:
    """The job's allocation: its ``kind``, the virtual ``shape`` its ranks are placed on
    (the node count alone for noncont and one-axis jobs), and for a one-axis torus job the
    virtual ``block`` of whole units its snake runs through."""

    kind: Kind
    shape: list[int]
    block: list[int] | None = None

    @property
    def request(self) -> str:
        """What the job asks the batch system for: ``48x6x48:torus``, ``64:noncont``."""
        text = "x".join(map(str, self.shape))
        return text if self.kind == "switched" else f"{text}:{self.kind}"


def shape_score(cluster: ClusterSpec, shape: list[int], tp_nodes: int) -> tuple[int, int, int]:
    """Lower is better: a tensor group fills an axis, then a small physical diameter, then a
    compact shape."""
    fit = 0 if tp_nodes in shape else 1 if any(e % tp_nodes == 0 for e in shape) else 2
    ic = cluster.interconnect
    diameter = sum(shape)
    if isinstance(ic, TorusInterconnect) and cluster.allocation.virtual_axes:
        diameter = diameter_hops(*job_block(ic, cluster.allocation, shape))
    return fit, diameter, sum(shape)


def tensor_nodes(job: Job) -> int:
    """Nodes one tensor-parallel group spans (its peers share nodes first)."""
    return job.layout.tp // node_split(job.layout.grid, job.processes_per_node)["tp"]


def whole_unit_shapes(cluster: ClusterSpec, nodes: int, exact: bool) -> list[list[int]]:
    """Virtual shapes of whole units within the machine's axes holding exactly ``nodes``
    nodes, or (``exact=False``) the fewest nodes at least ``nodes``."""
    ic = cluster.interconnect
    assert isinstance(ic, TorusInterconnect)
    limits = cluster.virtual_axis_limits() or [d.size for d in ic.dims]
    units = cluster.allocation.unit_shape or [1] * len(limits)
    if exact:
        return job_shapes(nodes, limits, units)
    per_unit = math.prod(units)
    for total in range(-(-nodes // per_unit) * per_unit, math.prod(limits) + 1, per_unit):
        shapes = job_shapes(total, limits, units)
        if shapes:
            return shapes
    return []


def _best(cluster: ClusterSpec, shapes: list[list[int]], tp_nodes: int) -> list[int]:
    return min(shapes, key=lambda s: (shape_score(cluster, s, tp_nodes), s))


def resolve_allocation(job: Job) -> JobAllocation:
    """The job's allocation (see the module docstring for the rule).

    Raises:
        SpecError: no allocation of the node count fits the machine.
    """
    cluster, nodes, lay = job.cluster, job.nodes, job.layout
    if not isinstance(cluster.interconnect, TorusInterconnect):
        return JobAllocation("switched", list(lay.job_shape or [nodes]))
    kinds = cluster.allocation.kinds_for(nodes)
    kind = lay.allocation
    shape = list(lay.job_shape) if lay.job_shape is not None else None
    if kind is None and shape is not None:
        kind = "noncont" if len(shape) == 1 and kinds[:1] == ["noncont"] else "torus"
    if kind == "noncont":
        return JobAllocation("noncont", [nodes])
    if shape is not None and len(shape) > 1:
        return JobAllocation("torus", shape)
    tp_nodes = tensor_nodes(job)
    if shape is None:
        exact = whole_unit_shapes(cluster, nodes, exact=True)
        if exact:
            return JobAllocation("torus", _best(cluster, exact, tp_nodes))
        if kind is None and "noncont" in kinds:
            return JobAllocation("noncont", [nodes])
    padded = whole_unit_shapes(cluster, nodes, exact=False)
    if not padded or "torus" not in kinds:
        raise SpecError(
            f"layout: no allocation of {nodes} nodes fits {cluster.name} "
            f"({cluster.allocation.describe_groups()})"
        )
    return JobAllocation("torus", [nodes], _best(cluster, padded, tp_nodes))


def allocation_network(cluster: ClusterSpec, alloc: JobAllocation, ppn: int) -> Network:
    """The network the job's ranks talk over."""
    nodes = math.prod(alloc.shape)
    if alloc.kind == "noncont":
        return noncont_network(cluster, nodes, ppn)
    if alloc.block is not None:
        return block_snake_network(cluster, alloc.block, nodes, ppn)
    return build_network(cluster, alloc.shape, ppn)
