"""Communication of a placed job: which flows each collective makes, and what they cost.

The tensor-, data- and pipeline-parallel groups come from :class:`RankGrid`; where their
ranks sit comes from :mod:`fugaku_sim.parallel.placement`; the network prices the flows.

Concurrency (what contends with what): all groups of one kind *on one pipeline stage* run
their collective at the same moment (data-parallel replicas run identical timelines), so
their flows are priced together, and each plan prices them alone. When the rings of
collectives that can run at once meet on a link -- tensor rings of different stages, the
data-parallel traffic of ZeRO beside a stage's tensor collectives -- the fast mode shares
those links among the live collectives (:mod:`fugaku_sim.sim.contention`). The detailed
mode (:class:`fugaku_sim.sim.transport.NetworkTransport`) drops all these assumptions and
shares links among whatever flows are live, which is how they are tested.

A group that forms a grid over (node slot, virtual axes) -- every combination of its
distinct coordinates present -- gets two candidate all-reduce algorithms: one ring through the
grid in snake order, and the per-dimension (hierarchical) all-reduce along each level in turn,
intra-node first. Any other group gets a ring in group order. All rings run both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from fugaku_sim.parallel.groups import RankGrid
from fugaku_sim.parallel.placement import Placement, grid_indices
from fugaku_sim.sim.collectives import CollectivePlan, P2PPlan, RingPhase
from fugaku_sim.sim.topology import Flows, Loads, Network, snake

#: the groups whose collectives of different stages may meet on a link
GroupKind = Literal["tp", "dp"]


@dataclass(frozen=True)
class RingSet:
    """Concurrent rings (R, n) of ranks that carry ``share`` of each group's message."""

    rings: np.ndarray
    share: float


def rank_array(grid: RankGrid) -> np.ndarray:
    """Rank at each (tp, pp, dp) coordinate, shape (tp, pp, dp)."""
    idx = grid_indices(grid)
    out = np.empty((grid.tp, grid.pp, grid.dp), dtype=np.int64)
    out[idx["tp"], idx["pp"], idx["dp"]] = np.arange(grid.world)
    return out


def _levels(members: np.ndarray, placement: Placement) -> list[np.ndarray]:
    """Coordinates (G, n) of each member at each level: node slot, then each virtual axis."""
    nodes = placement.node[members.reshape(-1)]  # members are ranks; coordinates are nodes
    coords = placement.node_coords(nodes).reshape(*members.shape, -1)
    return [placement.slot[members]] + [coords[..., a] for a in range(coords.shape[-1])]


def _distinct(values: np.ndarray) -> np.ndarray:
    s = np.sort(values, axis=1)
    return 1 + (np.diff(s, axis=1) != 0).sum(axis=1)


def grid_view(members: np.ndarray, placement: Placement) -> tuple[np.ndarray, list[int]] | None:
    """Members (G, n) arranged as (G, n_k, ..., n_1) by level coordinates, with counts
    [n_1, ..., n_k] of the levels that vary; None if some group is not a full grid."""
    levels = _levels(members, placement)
    varying, counts = [], []
    for values in levels:
        d = _distinct(values)
        if (d != d[0]).any():
            return None
        if d[0] > 1:
            varying.append(values)
            counts.append(int(d[0]))
    if int(np.prod(counts)) != members.shape[1]:
        return None
    g = members.shape[0]
    keys = [v.reshape(-1) for v in varying] + [np.repeat(np.arange(g), members.shape[1])]
    order = np.lexsort(keys)
    arranged = members.reshape(-1)[order].reshape(g, *reversed(counts))
    return arranged, counts


def ring_algorithms(members: np.ndarray, placement: Placement) -> dict[str, list[RingSet]]:
    """Candidate all-reduce algorithms of concurrent groups ``members`` (G, n)."""
    n = members.shape[1]
    if n <= 1:
        return {}
    view = grid_view(members, placement)
    if view is None:
        return {"ring": [RingSet(members, 1.0)]}
    arranged, counts = view
    g = members.shape[0]
    path = snake(counts)  # (n, k) level indices, level 1 fastest
    strides = np.cumprod([1] + counts[:-1])
    flat = arranged.reshape(g, -1)  # C order: level 1 fastest
    out = {"ring": [RingSet(flat[:, path @ strides], 1.0)]}
    if len(counts) > 1:
        phases, share = [], 1.0
        k = len(counts)
        for level in range(k):
            axis = k - level  # level 1 is the last array axis
            rings = np.moveaxis(arranged, axis, -1).reshape(-1, counts[level])
            phases.append(RingSet(rings, share))
            share /= counts[level]
        out["per-dimension"] = phases
    return out


def ring_pairs(rings: np.ndarray, directions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(sources, destinations) of one step of ``rings``: each rank to its successor (and
    predecessor)."""
    src = rings.reshape(-1)
    dst = np.roll(rings, -1, axis=1).reshape(-1)
    if directions == 2:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    return src, dst


def ring_flows(rings: np.ndarray, placement: Placement, directions: int = 2) -> Flows:
    """Flows of one step of ``rings``: each rank to its successor (and predecessor)."""
    return pair_flows(*ring_pairs(rings, directions), placement)


def pair_flows(src: np.ndarray, dst: np.ndarray, placement: Placement) -> Flows:
    return Flows(placement.node[src], placement.slot[src], placement.node[dst], placement.slot[dst])


#: a collective plan's routed flows: its algorithms' names and, per algorithm per phase,
#: (ranks in a ring, share of the message, the phase's loads)
RingLoads = tuple[tuple[str, ...], tuple[tuple[tuple[int, float, Loads], ...], ...]]


class CommModel:
    """Collective plans of one placed job, per pipeline stage, priced on its network."""

    def __init__(self, grid: RankGrid, placement: Placement, network: Network):
        self.grid, self.placement, self.network = grid, placement, network
        self._cache: dict[tuple[str, int, int], object] = {}
        self._rings: dict[tuple[GroupKind, int], dict[str, list[RingSet]]] = {}
        # the plans' routed flows, rates aside (kept by repriced copies): a collective's
        # algorithm names and, per algorithm per phase, (ranks, share, loads); a
        # point-to-point plan's loads
        self._ring_loads: dict[tuple[str, int, int], RingLoads] = {}
        self._p2p_loads: dict[tuple[str, int, int], Loads] = {}

    def repriced(self, network: Network) -> CommModel:
        """These placed groups on ``network``, which routes every flow as this model's
        network does and has other rates or latencies: its plans priced from the flows'
        loads already found (the same figures as a model built on ``network`` anew).

        Raises:
            ValueError: ``network`` routes flows differently.
        """
        if network.routes_key != self.network.routes_key:
            raise ValueError("repriced: the network routes flows differently; place anew")
        out = CommModel(self.grid, self.placement, network)
        out._rings = self._rings
        out._ring_loads, out._p2p_loads = self._ring_loads, self._p2p_loads
        return out

    @cached_property
    def ranks(self) -> np.ndarray:
        return rank_array(self.grid)

    def tp_groups(self, stage: int) -> np.ndarray:
        """Tensor groups of ``stage``: (dp, tp) ranks."""
        return self.ranks[:, stage, :].T

    def dp_groups(self, stage: int) -> np.ndarray:
        """Data-parallel groups of ``stage``: (tp, dp) ranks."""
        return self.ranks[:, stage, :]

    def embedding_groups(self) -> np.ndarray:
        """First and last stage pairs that all-reduce tied embedding gradients: (tp x dp, 2)."""
        first = self.ranks[:, 0, :].reshape(-1)
        last = self.ranks[:, -1, :].reshape(-1)
        return np.stack([first, last], axis=1)

    def _plan(self, key: tuple[str, int, int], members: np.ndarray,
              algos: dict[str, list[RingSet]] | None = None) -> CollectivePlan:
        if key not in self._cache:
            if key not in self._ring_loads:
                algos = algos if algos is not None else ring_algorithms(members, self.placement)
                self._ring_loads[key] = (tuple(algos), tuple(
                    tuple((rs.rings.shape[1], rs.share,
                           self.network.loads(ring_flows(rs.rings, self.placement)))
                          for rs in sets) for sets in algos.values()))
            names, phases = self._ring_loads[key]
            priced = tuple(tuple(RingPhase(ranks, share, *self.network.price(loads))
                                 for ranks, share, loads in algo) for algo in phases)
            self._cache[key] = CollectivePlan(priced, names)
        return self._cache[key]  # type: ignore[return-value]

    def tp_plan(self, stage: int) -> CollectivePlan:
        return self._plan(("tp", stage, 0), self.tp_groups(stage), self.rings("tp", stage))

    def dp_plan(self, stage: int) -> CollectivePlan:
        return self._plan(("dp", stage, 0), self.dp_groups(stage), self.rings("dp", stage))

    def embedding_plan(self) -> CollectivePlan:
        return self._plan(("emb", 0, 0), self.embedding_groups())

    def p2p_plan(self, src_stage: int, dst_stage: int) -> P2PPlan:
        """All tensor ranks of all replicas send from ``src_stage`` to ``dst_stage`` at once."""
        key = ("p2p", src_stage, dst_stage)
        if key not in self._cache:
            if key not in self._p2p_loads:
                src = self.ranks[:, src_stage, :].reshape(-1)
                dst = self.ranks[:, dst_stage, :].reshape(-1)
                self._p2p_loads[key] = self.network.loads(pair_flows(src, dst, self.placement))
            self._cache[key] = P2PPlan(*self.network.price(self._p2p_loads[key]))
        return self._cache[key]  # type: ignore[return-value]

    def rings(self, kind: GroupKind, stage: int) -> dict[str, list[RingSet]]:
        """The candidate algorithms' rings of ``stage``'s ``kind`` groups (cached)."""
        if (kind, stage) not in self._rings:
            groups = self.tp_groups(stage) if kind == "tp" else self.dp_groups(stage)
            self._rings[(kind, stage)] = ring_algorithms(groups, self.placement)
        return self._rings[(kind, stage)]

    def plan(self, kind: GroupKind, stage: int) -> CollectivePlan:
        return self.tp_plan(stage) if kind == "tp" else self.dp_plan(stage)
