"""Where the nodes of a job that is not one block of the torus sit: non-contiguous jobs and
one-axis torus jobs that do not fill their block.

Non-contiguous (``node=N:noncont``, Fugaku's resource groups of up to 384 nodes): the batch
system gives the job free nodes wherever they are (Fugaku user guide, "Usage rule" 3.4.1:
noncont is the default of the small groups; mesh and torus wait longer). Where a busy
machine's free nodes are is not published; the model here, an assumption kept in one place:

- The job takes whole allocation units (Tofu units: a x b x c = 2 x 3 x 2 = 12 nodes that
  are each other's neighbours), filling each unit before the next; the last may be partial.
  Inside a unit the nodes follow a snake through (a, b, c), so consecutive job nodes in a
  unit are one hop apart.
- The units are ``ceil(N / 12)`` distinct positions of the machine's unit grid (X x Y x Z =
  24 x 23 x 24 on Fugaku) drawn uniformly without replacement by a seeded generator
  (``allocation.noncont_seed``), listed in node-index order as a scheduler lists free nodes.
  Two units are then a typical random distance apart: on a ring of n positions the mean
  distance is n/4 (even n) or (n^2 - 1)/4n (odd n), about 6 + 5.7 + 6 = 17.7 hops between
  any two units on Fugaku; units next to each other in node order are somewhat closer
  (about 15 hops with 6 units, 12 with 32, measured over seeds).
- Messages follow the machine's dimension-order routing over its real links (the whole
  machine's torus, wrap-arounds included), so flows share a link exactly where their routes
  overlap. Other jobs' traffic on the same links is not modelled (a lower bound on time).

Pricing then reuses :class:`fugaku_sim.sim.topology.MappedTorus` -- the same link-load,
injection and latency rules as a torus block -- so the cost is one table lookup per flow
and one pass over the links the flows use: cheap at 512 nodes.

One-axis torus jobs (``node=512:torus``): a torus job occupies a block of whole units (the
Tofu unit is the allocation granule), and 512 is not a multiple of 12; the job is placed on
the first N positions of a snake through the smallest block of whole units that holds it
(4x6x22 = 528 nodes for 512), the rest of the block idle (assumed: the user guide gives the
granule, not where a short job sits in it).
"""

from __future__ import annotations

import math

import numpy as np

from fugaku_sim.errors import SpecError
from fugaku_sim.sim.topology import MappedTorus, Torus, job_block, keeps_wrap, snake
from fugaku_sim.spec.cluster import ClusterSpec, TorusInterconnect


def unit_extents(cluster: ClusterSpec) -> list[int]:
    """Physical extent of one allocation unit along each dimension of the torus.

    Each virtual axis's unit extent folds onto the dimensions it groups, unit dimension first
    (Fugaku: unit 2x3x2 over (X, a), (Y, b), (Z, c) -> X 1, Y 1, Z 1, a 2, b 3, c 2).

    Raises:
        SpecError: the unit does not tile the machine's dimensions.
    """
    ic = cluster.interconnect
    assert isinstance(ic, TorusInterconnect)
    unit = cluster.allocation.unit_shape
    out = job_block(ic, cluster.allocation, unit)[0] if unit else [1] * len(ic.dims)
    bad = [d.name for d, e in zip(ic.dims, out) if d.size % e]
    if bad:
        raise SpecError(
            f"allocation.unit_shape: the unit does not tile dimension {bad[0]} of the machine"
        )
    return out


def draw_units(grid: list[int], count: int, seed: int) -> np.ndarray:
    """``count`` distinct unit positions (count, D) of a unit ``grid``, drawn uniformly with a
    seeded generator and sorted by flat index (dimension 0 fastest).

    Raises:
        SpecError: the machine has fewer than ``count`` units.
    """
    total = math.prod(grid)
    if count > total:
        raise SpecError(f"layout: a noncont job needs {count} units; the machine has {total}")
    flat = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    out = np.empty((count, len(grid)), dtype=np.int64)
    rest = flat.astype(np.int64)
    for d, e in enumerate(grid):
        out[:, d] = rest % e
        rest = rest // e
    return out


def unit_fill_coords(units: np.ndarray, unit_ext: list[int], nodes: int) -> np.ndarray:
    """Physical coordinates (nodes, D) of a job filling ``units`` (unit grid positions, in
    order) one after another, each along a snake through the unit.

    >>> unit_fill_coords(np.array([[0, 0], [2, 0]]), [1, 2], 3).tolist()
    [[0, 0], [0, 1], [2, 0]]
    """
    inside = snake(unit_ext)  # (per_unit, D), consecutive entries one hop apart
    per_unit = inside.shape[0]
    i = np.arange(nodes)
    return units[i // per_unit] * np.asarray(unit_ext) + inside[i % per_unit]


def noncont_network(cluster: ClusterSpec, nodes: int, ppn: int) -> MappedTorus:
    """The whole machine's torus with a non-contiguous job's ``nodes`` scattered over it."""
    ic = cluster.interconnect
    assert isinstance(ic, TorusInterconnect)
    unit_ext = unit_extents(cluster)
    grid = [d.size // e for d, e in zip(ic.dims, unit_ext)]
    per_unit = math.prod(unit_ext)
    units = draw_units(grid, -(-nodes // per_unit), cluster.allocation.noncont_seed)
    coords = unit_fill_coords(units, unit_ext, nodes)
    extents = [d.size for d in ic.dims]
    wraps = [keeps_wrap(d, d.size) for d in ic.dims]  # the whole machine
    return MappedTorus(ic, extents, wraps, coords, ppn)


def block_snake_network(cluster: ClusterSpec, block: list[int], nodes: int, ppn: int) -> MappedTorus:
    """A one-axis torus job: the first ``nodes`` positions of a snake through the virtual
    ``block`` (each virtual axis is itself a one-hop ring, so consecutive positions are one
    physical hop apart)."""
    ic = cluster.interconnect
    assert isinstance(ic, TorusInterconnect)
    torus = Torus(ic, cluster.allocation, block)
    order = snake(block)[:nodes]  # (nodes, 3) virtual coordinates, axis 0 fastest
    strides = np.cumprod([1] + block[:-1])
    coords = torus.physical(order @ strides)
    return MappedTorus(ic, torus.extents, torus.wraps, coords, ppn)
