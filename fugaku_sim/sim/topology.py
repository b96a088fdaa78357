"""Topology: the network a job's ranks talk over -- links, routes, capacities, latencies.

Two kinds, one interface (:class:`Network`):

:class:`Torus`
    The job's block of an N-D torus/mesh (Tofu-D: X, Y, Z, a, b, c). The job asks for a
    virtual shape (``48x6x48``); each virtual axis folds physical dimensions
    (``AllocationSpec.virtual_axes``: (X, a), (Y, b), (Z, c)). The extent of a virtual axis is
    factored over its dimensions unit dimension first (``48 = X 24 x a 2``, ``6 = Y 2 x b 3``);
    a dimension keeps its wrap-around link only if the job spans all of it. A virtual axis is
    a *snake* (boustrophedon) through its physical block, its dimension order chosen to make
    the virtual ring shortest, so consecutive virtual coordinates are one physical hop apart
    (48 = X x a: X 0..23 on a=0, then X 23..0 on a=1, closing over the a link; 6 = Y x b:
    b 0,1,2 on Y=0, then 2,1,0 on Y=1, closing over the Y link). Messages follow
    dimension-order routing over the physical dimensions in profile order, shortest way round
    a wrapped dimension (ties go +). Each directed link carries ``link_bw``; a node injects at
    most ``injection_bw`` in all and one flow uses one engine (``injection_bw / engines``);
    processes on one node exchange data through shared memory, each process sending at most
    ``intra_node_bw`` and receiving at most as much (A64FX: one process per CMG, the CMGs on
    a ring bus).
    Sources: Ajima et al., "The Tofu Interconnect D", IEEE Cluster 2018 (dimensions, ports,
    TNIs, routing); Fugaku user guide, job shapes ``node=AxBxC:torus``.
:class:`Switched`
    Accelerators on an intra-node switch (NVSwitch) and nodes on a fat tree: each rank has a
    port into the node switch (``intra_node.bw``) and a rail into the fabric
    (``inter_node.bw x links_per_node / ppn / oversubscription``), rail-optimised as NCCL runs
    on DGX SuperPODs. Source: NVIDIA DGX A100 user guide (8 GPUs, 8 HDR rails, NVSwitch).

Links are integers; capacities are bytes per second; latencies seconds.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from fugaku_sim.errors import SpecError
from fugaku_sim.spec.cluster import AllocationSpec, ClusterSpec, TorusDim, TorusInterconnect


@dataclass(frozen=True)
class Flows:
    """A set of concurrent transfers between ranks' endpoints (node index, slot)."""

    src_node: np.ndarray
    src_slot: np.ndarray
    dst_node: np.ndarray
    dst_slot: np.ndarray

    @property
    def count(self) -> int:
        return int(self.src_node.shape[0])


@dataclass(frozen=True)
class Loads:
    """What a set of concurrent flows puts on a network, its rates aside: none at all
    (``empty``), whether a flow leaves its node, how many flows share the busiest resource
    of each kind (in the network's own order) and the longest route's hops. The network's
    figures price them (``price``), so a placed job whose network changes only its rates
    or latencies is priced again without routing its flows again
    (:meth:`fugaku_sim.sim.comm.CommModel.repriced`)."""

    empty: bool
    inter: bool
    counts: tuple[int, ...]
    hops: int = 0


def largest_divisor_at_most(n: int, limit: int) -> int:
    """Largest divisor of ``n`` not above ``limit``."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def fold_extents(extent: int, sizes: list[int]) -> list[int]:
    """Factor a virtual extent over physical dimension ``sizes``, last dimension first.

    >>> fold_extents(48, [24, 2]), fold_extents(6, [23, 3])
    ([24, 2], [2, 3])

    Raises:
        SpecError: the extent does not factor within the dimension sizes.
    """
    out = [1] * len(sizes)
    left = extent
    for i in reversed(range(len(sizes))):
        out[i] = largest_divisor_at_most(left, sizes[i])
        left //= out[i]
    if left != 1:
        raise SpecError(f"layout.job_shape: extent {extent} does not fold onto sizes {sizes}")
    return out


def keeps_wrap(dim: TorusDim, extent: int) -> bool:
    """Whether a job spanning ``extent`` of physical dimension ``dim`` has its wrap-around
    link: only when it spans the whole of a wrapped dimension, and only beyond 2 nodes (a
    ring of 2 is a single link either way)."""
    return dim.wrap and extent == dim.size and extent > 2


def job_block(
    ic: TorusInterconnect, alloc: AllocationSpec, shape: list[int]
) -> tuple[list[int], list[bool]]:
    """(extent, wrap-around) of every physical dimension in the block a job of virtual
    ``shape`` occupies: each virtual axis folds its dimensions (:func:`fold_extents`); a
    dimension no axis folds has extent 1.

    Raises:
        SpecError: more axes than the machine folds, or an extent that does not fold.
    """
    extents = [1] * len(ic.dims)
    for axis, group in enumerate(_virtual_groups(ic, alloc, len(shape))):
        idx = [ic.dim_index(n) for n in group]
        for i, e in zip(idx, fold_extents(shape[axis], [ic.dims[i].size for i in idx])):
            extents[i] = e
    return extents, [keeps_wrap(d, e) for d, e in zip(ic.dims, extents)]


def diameter_hops(extents: list[int], wraps: list[bool]) -> int:
    """Router hops between the two farthest nodes of a block: half way round a wrapped
    dimension, end to end along an open one.

    >>> diameter_hops([24, 2, 8], [True, False, False])
    20
    """
    return sum(e // 2 if w else e - 1 for e, w in zip(extents, wraps))


def snake(extents: list[int]) -> np.ndarray:
    """Boustrophedon order through a block, first dimension fastest: (prod, ndim) coords.

    >>> snake([2, 2]).tolist()
    [[0, 0], [1, 0], [1, 1], [0, 1]]
    """
    if not extents:
        return np.zeros((1, 0), dtype=np.int64)
    inner = snake(extents[:-1])
    rows = []
    for i in range(extents[-1]):
        block = inner if i % 2 == 0 else inner[::-1]
        rows.append(np.column_stack([block, np.full(block.shape[0], i)]))
    return np.vstack(rows).astype(np.int64)


def ring_hops(coords: np.ndarray, extents: list[int], wraps: list[bool]) -> int:
    """Hops of the closed ring through ``coords`` in order (dimension-order routing)."""
    nxt = np.roll(coords, -1, axis=0)
    return int(hop_counts(coords, nxt, np.array(extents), np.array(wraps)).sum())


def hop_counts(
    src: np.ndarray, dst: np.ndarray, extents: np.ndarray, wraps: np.ndarray
) -> np.ndarray:
    """Router hops between physical coordinates (F, D) -> (F,)."""
    delta = np.abs(dst - src)
    wrapped = np.minimum(delta, extents - delta)
    return np.where(wraps, wrapped, delta).sum(axis=1)


class Torus:
    """The physical block of a torus that a job of virtual ``shape`` occupies."""

    kind = "torus"

    def __init__(
        self, ic: TorusInterconnect, alloc: AllocationSpec, shape: list[int], ppn: int = 1
    ):
        self.ic = ic
        self.shape = list(shape)
        groups = _virtual_groups(ic, alloc, len(shape))
        self.extents, self.wraps = job_block(ic, alloc, shape)
        self._ext = np.array(self.extents, dtype=np.int64)
        self._wrap = np.array(self.wraps)
        self.tables = [self._fold_table(groups[a], shape[a]) for a in range(len(shape))]
        self.nodes = math.prod(self.extents)
        self._set_links(self.nodes, ppn)

    def _set_links(self, job_nodes: int, ppn: int) -> None:
        """Rates and link ids: torus links of the block's ``nodes``, then one injection port
        per job node, then a shared-memory send and receive port per process."""
        ic = self.ic
        self.job_nodes, self.ppn = job_nodes, ppn
        self.link_bw_Bps = ic.link_bw_Bps
        self.flow_cap_Bps = ic.injection_bw_GBps * 1e9 / ic.injection_engines
        self.injection_Bps = ic.injection_bw_GBps * 1e9
        self.intra_Bps = ic.intra_node_bw_GBps * 1e9
        self._inject_base = 2 * len(self.extents) * self.nodes
        self._intra_base = self._inject_base + job_nodes
        self.n_links = self._intra_base + 2 * job_nodes * ppn

    def _fold_table(self, group: list[str], extent: int) -> np.ndarray:
        """Physical coordinates (extent, D) of each position along one virtual axis."""
        idx = [self.ic.dim_index(n) for n in group]
        best: tuple[int, np.ndarray] | None = None
        for perm in itertools.permutations(idx):
            path = snake([self.extents[i] for i in perm])
            full = np.zeros((path.shape[0], len(self.extents)), dtype=np.int64)
            full[:, list(perm)] = path
            hops = ring_hops(full, self.extents, self.wraps)
            if best is None or hops < best[0]:
                best = (hops, full)
        assert best is not None and best[1].shape[0] == extent
        return best[1]

    @functools.cached_property
    def _coords(self) -> np.ndarray:
        """Physical coordinates (job nodes, D) of every job node, from the fold tables."""
        rest = np.arange(math.prod(self.shape), dtype=np.int64)
        out = np.zeros((rest.shape[0], len(self.extents)), dtype=np.int64)
        for extent, table in zip(self.shape, self.tables):
            out += table[rest % extent]
            rest = rest // extent
        return out

    def physical(self, nodes: np.ndarray) -> np.ndarray:
        """Physical coordinates (n, D) of job node indices (virtual, axis 0 fastest)."""
        return self._coords[np.asarray(nodes, dtype=np.int64)]

    def flat(self, phys: np.ndarray) -> np.ndarray:
        """Flat index of physical coordinates within the block (dimension 0 fastest)."""
        out = np.zeros(phys.shape[0], dtype=np.int64)
        mult = 1
        for d, e in enumerate(self.extents):
            out += phys[:, d] * mult
            mult *= e
        return out

    def hops(self, flows: Flows) -> np.ndarray:
        return hop_counts(
            self.physical(flows.src_node), self.physical(flows.dst_node), self._ext, self._wrap
        )

    def step_latency_s(self, flows: Flows) -> float:
        """Latency of one message step: injection latency plus the longest route's hops."""
        if flows.count == 0:
            return 0.0
        return self._latency_s(int(self.hops(flows).max()))

    def _latency_s(self, hops: int) -> float:
        return self.ic.injection_latency_us * 1e-6 + hops * self.ic.hop_latency_us * 1e-6

    def seconds_per_byte(self, flows: Flows) -> float:
        """Seconds per byte of each flow when all ``flows`` run at once with equal sizes:
        the most loaded link, injection port or node memory decides (fair sharing)."""
        if flows.count == 0:
            return 0.0
        return self._seconds_per_byte(*self._counts(flows))

    def _counts(self, flows: Flows) -> tuple[bool, tuple[int, ...]]:
        """(whether a flow leaves its node, (flows on the busiest link, on the busiest
        injection port, on the busiest shared-memory port))."""
        inter = flows.src_node != flows.dst_node
        link = injection = intra = 0
        if inter.any():
            src = self.physical(flows.src_node[inter])
            dst = self.physical(flows.dst_node[inter])
            link = max_link_load(src, dst, self.extents, self.wraps)
            injection = int(np.bincount(flows.src_node[inter]).max())
        if (~inter).any():
            ppn, local = self.ppn, ~inter
            sends = np.bincount(flows.src_node[local] * ppn + flows.src_slot[local]).max()
            receives = np.bincount(flows.dst_node[local] * ppn + flows.dst_slot[local]).max()
            intra = int(max(sends, receives))
        return bool(inter.any()), (link, injection, intra)

    def _seconds_per_byte(self, inter: bool, counts: tuple[int, ...]) -> float:
        link, injection, intra = counts
        worst = 1.0 / self.flow_cap_Bps if inter else 0.0
        if inter:
            worst = max(worst, link / self.link_bw_Bps)
            worst = max(worst, injection / self.injection_Bps)
        if intra:
            worst = max(worst, intra / self.intra_Bps)
        return float(worst)

    def loads(self, flows: Flows) -> Loads:
        """What ``flows`` put on this network apart from its rates (see :class:`Loads`)."""
        if flows.count == 0:
            return Loads(True, False, ())
        inter, counts = self._counts(flows)
        return Loads(False, inter, counts, int(self.hops(flows).max()))

    def price(self, loads: Loads) -> tuple[float, float]:
        """(seconds per byte, step latency) of flows with ``loads``: the same figures as
        :meth:`seconds_per_byte` and :meth:`step_latency_s` of the flows themselves."""
        if loads.empty:
            return 0.0, 0.0
        return self._seconds_per_byte(loads.inter, loads.counts), self._latency_s(loads.hops)

    @property
    def routes_key(self) -> tuple[object, ...]:
        """Equal for two networks that route every flow alike (their rates may differ)."""
        where = self.physical(np.arange(math.prod(self.shape), dtype=np.int64))
        return ("torus", tuple(self.extents), tuple(self.wraps), self.ppn, where.tobytes())

    def route(self, src_node: int, src_slot: int, dst_node: int, dst_slot: int) -> list[int]:
        """Link ids of the dimension-order route after the injection port, or the sender's
        and receiver's shared-memory ports on one node."""
        if src_node == dst_node:
            ppn = self.ppn
            sender = self._intra_base + src_node * ppn + src_slot
            receiver = self._intra_base + (self.job_nodes + dst_node) * ppn + dst_slot
            return [sender, receiver]
        cur = self.physical(np.array([src_node]))[0].copy()
        dst = self.physical(np.array([dst_node]))[0]
        links = [self._inject_base + src_node]
        for d, e in enumerate(self.extents):
            while cur[d] != dst[d]:
                step = _direction(int(cur[d]), int(dst[d]), e, self.wraps[d])
                here = int(self.flat(cur[None])[0])
                links.append((2 * d + (0 if step > 0 else 1)) * self.nodes + here)
                cur[d] = (cur[d] + step) % e
        return links

    def capacities(self) -> np.ndarray:
        """Bytes per second of every link id."""
        caps = np.full(self.n_links, self.link_bw_Bps)
        caps[self._inject_base : self._intra_base] = self.injection_Bps
        caps[self._intra_base :] = self.intra_Bps
        return caps


class MappedTorus(Torus):
    """Job nodes at given physical coordinates of a region of a torus.

    The region (``extents``, ``wraps``) is the whole machine for a non-contiguous job, or a
    block of whole units for a one-axis job that does not fill it; ``coords`` (nodes, D) says
    where each job node is (:mod:`fugaku_sim.sim.noncont`). Routing, link loads, injection,
    shared memory and latency follow the same rules as :class:`Torus`.
    """

    def __init__(
        self,
        ic: TorusInterconnect,
        extents: list[int],
        wraps: list[bool],
        coords: np.ndarray,
        ppn: int = 1,
    ):
        self.ic = ic
        self.coords = np.asarray(coords, dtype=np.int64)
        self.shape = [int(self.coords.shape[0])]
        self.extents, self.wraps = list(extents), list(wraps)
        self._ext = np.array(self.extents, dtype=np.int64)
        self._wrap = np.array(self.wraps)
        self.nodes = math.prod(self.extents)
        self._set_links(self.shape[0], ppn)

    def physical(self, nodes: np.ndarray) -> np.ndarray:
        """Physical coordinates (n, D) of job node indices."""
        return self.coords[np.asarray(nodes, dtype=np.int64)]


def _direction(a: int, b: int, extent: int, wrap: bool) -> int:
    """+1 or -1: the way dimension-order routing moves from a to b (shortest, ties +)."""
    if not wrap:
        return 1 if b > a else -1
    forward = (b - a) % extent
    return 1 if forward <= extent - forward else -1


def _virtual_groups(ic: TorusInterconnect, alloc: AllocationSpec, naxes: int) -> list[list[str]]:
    """Physical dimensions folded by each of ``naxes`` virtual axes."""
    groups = [list(g) for g in alloc.virtual_axes] or [[d.name] for d in ic.dims]
    if naxes > len(groups):
        raise SpecError(
            f"layout.job_shape: {naxes} axes, but the machine folds into at most {len(groups)}"
        )
    while len(groups) > naxes:  # fewer axes requested: merge the leading groups
        groups = [groups[0] + groups[1]] + groups[2:]
    return groups


def max_link_load(src: np.ndarray, dst: np.ndarray, extents: list[int], wraps: list[bool]) -> int:
    """Largest number of flows sharing one directed link under dimension-order routing.

    Vectorised: along each dimension every flow covers a run of links on one line of the
    block; runs are added with a difference array over the line unrolled twice (for wrap).
    """
    worst = 0
    n = src.shape[0]
    for d, size in enumerate(extents):
        cur = np.concatenate([dst[:, :d], src[:, d:]], axis=1)
        a, b = cur[:, d], dst[:, d]
        fwd = (b - a) % size
        if wraps[d]:
            plus = fwd <= size - fwd
            k = np.where(plus, fwd, size - fwd)
        else:
            plus = b > a
            k = np.abs(b - a)
        moving = k > 0
        if not moving.any():
            continue
        line = np.zeros(n, dtype=np.int64)
        mult = 1
        for i, e in enumerate(extents):
            if i != d:
                line += cur[:, i] * mult
                mult *= e
        # only the lines some flow runs along: a few jobs' nodes on a whole machine stay cheap
        used, line = np.unique(line, return_inverse=True)
        lines = int(used.shape[0])
        for direction in (True, False):
            sel = moving & (plus == direction)
            if not sel.any():
                continue
            start = np.where(direction, a, a - k + 1 + size)[sel]
            end = start + k[sel]
            cells = lines * (2 * size + 1)
            row = line[sel] * (2 * size + 1)
            diff = (np.bincount(row + start, minlength=cells)
                    - np.bincount(row + end, minlength=cells))
            cum = np.cumsum(diff.reshape(lines, 2 * size + 1), axis=1)
            load = cum[:, :size] + cum[:, size : 2 * size]
            worst = max(worst, int(load.max()))
    return worst


class Switched:
    """Ranks on a node switch (NVSwitch) and nodes on a fat tree, rail-optimised."""

    kind = "switched"

    def __init__(self, cluster: ClusterSpec, nodes: int, ppn: int):
        ic = cluster.interconnect
        assert ic.kind == "switched"
        self.nodes, self.ppn = nodes, ppn
        self.shape = [nodes]
        self.intra_Bps = ic.intra_node.bw_GBps * 1e9
        self.rail_Bps = ic.inter_node.bw_GBps * 1e9 * ic.inter_node.links_per_node / ppn
        self.rail_Bps /= ic.oversubscription
        self.intra_latency_s = ic.intra_node.latency_us * 1e-6
        self.inter_latency_s = ic.inter_node.latency_us * 1e-6
        self.flow_cap_Bps = max(self.intra_Bps, self.rail_Bps)
        self.n_links = 4 * nodes * ppn  # per rank: switch out, switch in, rail out, rail in

    def step_latency_s(self, flows: Flows) -> float:
        if flows.count == 0:
            return 0.0
        inter = bool((flows.src_node != flows.dst_node).any())
        return self.inter_latency_s if inter else self.intra_latency_s

    def seconds_per_byte(self, flows: Flows) -> float:
        if flows.count == 0:
            return 0.0
        return self._seconds_per_byte(self._counts(flows))

    def _counts(self, flows: Flows) -> tuple[int, ...]:
        """(flows on the busiest rail port, on the busiest switch port)."""
        inter = flows.src_node != flows.dst_node
        counts = []
        for mask in (inter, ~inter):
            load = 0
            if mask.any():
                out = flows.src_node[mask] * self.ppn + flows.src_slot[mask]
                inn = flows.dst_node[mask] * self.ppn + flows.dst_slot[mask]
                load = int(max(np.bincount(out).max(), np.bincount(inn).max()))
            counts.append(load)
        return tuple(counts)

    def _seconds_per_byte(self, counts: tuple[int, ...]) -> float:
        worst = 0.0
        for load, bw in zip(counts, (self.rail_Bps, self.intra_Bps)):
            if load:
                worst = max(worst, load / bw)
        return float(worst)

    def loads(self, flows: Flows) -> Loads:
        """What ``flows`` put on this network apart from its rates (see :class:`Loads`)."""
        if flows.count == 0:
            return Loads(True, False, ())
        inter = bool((flows.src_node != flows.dst_node).any())
        return Loads(False, inter, self._counts(flows))

    def price(self, loads: Loads) -> tuple[float, float]:
        """(seconds per byte, step latency) of flows with ``loads``."""
        if loads.empty:
            return 0.0, 0.0
        latency = self.inter_latency_s if loads.inter else self.intra_latency_s
        return self._seconds_per_byte(loads.counts), latency

    @property
    def routes_key(self) -> tuple[object, ...]:
        """Equal for two networks that route every flow alike (their rates may differ)."""
        return ("switched", self.nodes, self.ppn)

    def route(self, src_node: int, src_slot: int, dst_node: int, dst_slot: int) -> list[int]:
        """Link ids: the sender's and receiver's switch ports, or their rails."""
        r_src, r_dst = src_node * self.ppn + src_slot, dst_node * self.ppn + dst_slot
        width = self.nodes * self.ppn
        if src_node == dst_node:
            return [r_src, width + r_dst]
        return [2 * width + r_src, 3 * width + r_dst]

    def capacities(self) -> np.ndarray:
        width = self.nodes * self.ppn
        return np.concatenate(
            [np.full(2 * width, self.intra_Bps), np.full(2 * width, self.rail_Bps)]
        )


Network = Torus | Switched


def build_network(cluster: ClusterSpec, shape: list[int], ppn: int) -> Network:
    """The network of a job of virtual ``shape`` (torus) or of ``prod(shape)`` nodes."""
    ic = cluster.interconnect
    if isinstance(ic, TorusInterconnect):
        return Torus(ic, cluster.allocation, shape, ppn)
    return Switched(cluster, math.prod(shape), ppn)
