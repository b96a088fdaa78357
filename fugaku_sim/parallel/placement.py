"""Placement: which node (and which process slot on it) each rank runs on.

Pure arithmetic, like :mod:`fugaku_sim.parallel.groups`: degrees and a job shape in, an array
of node indices out. The simulator times the groups where this module puts them; the job
script writes the same mapping as Fugaku's ``vcoordfile`` (one ``(x,y,z)`` per rank).

Nodes of a job of virtual shape ``(E0, E1, ...)`` are numbered row-major with axis 0 fastest,
``node = x0 + E0 * (x1 + E1 * x2)`` -- the order of ``pjsub --mpi rank-map-bynode=XYZ``.

Strategies:

``linear``
    rank r runs on node r // ppn, slot r % ppn, in rank order (the scheduler's default
    mapping; with Megatron's ``tp-dp-pp`` order tensor peers land on consecutive nodes).
``topology``
    First the ppn slots of a node are filled with tensor peers, then data-parallel peers, then
    pipeline peers (greatest common divisors, so any ppn dividing the world works). The
    node-level degrees T x P x D are then factored onto the job's axes: T first, on an axis of
    exactly T nodes if there is one (a tensor group is then a whole virtual ring, one hop per
    step, wrap included), else innermost on an axis it divides; then the largest data-parallel
    factor that fills whole axes (DP rings close on the virtual torus); then P innermost on
    what is left (pipeline neighbours one hop apart); the rest of D outermost.

Worked example: Fugaku-LLM, tp=6 pp=8 dp=288, one process per node, shape 48x6x48:
T=6 takes axis 1 whole; D takes axis 0 whole (48) and its remaining 6 sit outermost on axis 2;
P=8 is innermost on axis 2. A tensor group is a 6-ring along axis 1, pipeline neighbours are
adjacent along axis 2, and each DP group is a 48-ring along axis 0 times a 6-ring (stride 8)
along axis 2.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fugaku_sim.parallel.groups import RankGrid

Strategy = Literal["linear", "topology"]
LOGICAL = ("tp", "pp", "dp")


@dataclass(frozen=True, eq=False)
class Placement:
    """Ranks on the nodes of a job of virtual ``shape``.

    ``node[r]`` is the node index of rank r (axis 0 fastest), ``slot[r]`` its process slot
    on that node. ``factors`` records, for the topology strategy, which logical axis factor
    sits on each job axis (inner first), for documentation and tests.
    """

    shape: tuple[int, ...]
    processes_per_node: int
    strategy: str
    node: np.ndarray  # (world,) int
    slot: np.ndarray  # (world,) int
    factors: tuple[tuple[tuple[str, int], ...], ...] = field(default=())

    @property
    def nodes(self) -> int:
        return math.prod(self.shape)

    @property
    def world(self) -> int:
        return int(self.node.shape[0])

    def node_coords(self, nodes: np.ndarray | None = None) -> np.ndarray:
        """Virtual coordinates (n, ndim) of ``nodes`` (default: every rank's node)."""
        idx = self.node if nodes is None else np.asarray(nodes)
        out = np.empty((idx.shape[0], len(self.shape)), dtype=np.int64)
        rest = idx.astype(np.int64)
        for axis, extent in enumerate(self.shape):
            out[:, axis] = rest % extent
            rest = rest // extent
        return out

    def coords(self, rank: int) -> tuple[int, ...]:
        """Virtual coordinates of the node of ``rank``."""
        return tuple(int(v) for v in self.node_coords(self.node[rank : rank + 1])[0])


def grid_indices(grid: RankGrid) -> dict[str, np.ndarray]:
    """Arrays of the tp, pp and dp coordinate of every rank (vectorised ``RankGrid.coords``)."""
    rest = np.arange(grid.world, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for axis in grid.axes:
        size = grid.size(axis)
        out[axis] = rest % size
        rest = rest // size
    return out


def linear_placement(grid: RankGrid, shape: list[int], ppn: int) -> Placement:
    """Rank r on node r // ppn (rank order), slot r % ppn."""
    _check(grid, shape, ppn)
    ranks = np.arange(grid.world, dtype=np.int64)
    return Placement(tuple(shape), ppn, "linear", ranks // ppn, ranks % ppn)


def node_split(grid: RankGrid, ppn: int) -> dict[str, int]:
    """How many tp, dp and pp peers share a node (tensor peers first), by gcd.

    >>> node_split(RankGrid(tp=4, pp=2, dp=4), 8)
    {'tp': 4, 'dp': 2, 'pp': 1}
    """
    left = ppn
    inner: dict[str, int] = {}
    for axis in ("tp", "dp", "pp"):
        inner[axis] = math.gcd(grid.size(axis), left)  # type: ignore[arg-type]
        left //= inner[axis]
    if left != 1:  # pragma: no cover - ppn divides the world, so the gcds exhaust it
        raise ValueError(f"{ppn} processes per node do not divide the rank grid")
    return inner


def factor_axes(degrees: dict[str, int], shape: list[int]) -> list[tuple[int, str, int]]:
    """Factor node-level degrees (tp, pp, dp) onto job axes.

    Returns (job axis, logical axis, factor) in assignment order: along a job axis and along
    a logical axis, earlier factors are inner (faster-varying). See the module docstring.

    >>> factor_axes({"tp": 6, "pp": 8, "dp": 288}, [48, 6, 48])
    [(1, 'tp', 6), (0, 'dp', 48), (2, 'pp', 8), (2, 'dp', 6)]
    """
    left = list(shape)
    out: list[tuple[int, str, int]] = []

    def put(name: str, axis: int, f: int) -> None:
        if f > 1:
            out.append((axis, name, f))
            left[axis] //= f

    t = degrees["tp"]
    if t > 1:
        exact = [i for i, e in enumerate(left) if e == t]
        divisible = [i for i, e in enumerate(left) if e % t == 0]
        if exact or divisible:
            put("tp", (exact or divisible)[0], t)
            t = 1
    d = degrees["dp"]
    for i in sorted(range(len(left)), key=lambda i: -left[i]):
        if left[i] > 1 and d % left[i] == 0:
            f = left[i]
            put("dp", i, f)
            d //= f
    remaining = {"tp": t, "pp": degrees["pp"], "dp": d}
    for name in ("tp", "pp", "dp"):
        n = remaining[name]
        for i in range(len(left)):
            g = math.gcd(n, left[i])
            put(name, i, g)
            n //= g
        if n != 1:  # pragma: no cover - products match, so the gcds exhaust n
            raise ValueError(f"cannot factor {name}={remaining[name]} onto shape {shape}")
    return out


def topology_placement(grid: RankGrid, shape: list[int], ppn: int) -> Placement:
    """Tensor groups on rings, pipeline neighbours adjacent, DP rings along whole axes."""
    _check(grid, shape, ppn)
    inner = node_split(grid, ppn)
    idx = grid_indices(grid)
    degrees = {a: grid.size(a) // inner[a] for a in LOGICAL}  # type: ignore[arg-type]
    within = {a: idx[a] % inner[a] for a in LOGICAL}
    outer = {a: idx[a] // inner[a] for a in LOGICAL}
    slot = within["tp"] + inner["tp"] * (within["dp"] + inner["dp"] * within["pp"])
    assigned = factor_axes(degrees, shape)
    rest = dict(outer)
    coord = [np.zeros(grid.world, dtype=np.int64) for _ in shape]
    stride = [1] * len(shape)
    for a, name, f in assigned:  # inner factors first, on both the job and logical axis
        coord[a] = coord[a] + stride[a] * (rest[name] % f)
        rest[name] = rest[name] // f
        stride[a] *= f
    node = np.zeros(grid.world, dtype=np.int64)
    mult = 1
    for a, extent in enumerate(shape):
        node += coord[a] * mult
        mult *= extent
    factors = tuple(
        tuple((name, f) for ax, name, f in assigned if ax == a) for a in range(len(shape))
    )
    return Placement(tuple(shape), ppn, "topology", node, slot, factors)


def place_ranks(grid: RankGrid, shape: list[int], ppn: int, strategy: Strategy) -> Placement:
    """Place the ranks of ``grid`` on a job of virtual ``shape`` with ``ppn`` per node."""
    if strategy == "linear":
        return linear_placement(grid, shape, ppn)
    if strategy == "topology":
        return topology_placement(grid, shape, ppn)
    raise ValueError(f"unknown placement {strategy!r}")


def _check(grid: RankGrid, shape: list[int], ppn: int) -> None:
    if ppn < 1 or grid.world % ppn:
        raise ValueError(f"{ppn} processes per node do not divide {grid.world} ranks")
    if math.prod(shape) * ppn != grid.world:
        raise ValueError(f"shape {shape} x {ppn} per node does not hold {grid.world} ranks")


def job_shapes(nodes: int, limits: list[int], units: list[int]) -> list[list[int]]:
    """Every virtual shape of ``nodes`` nodes within ``limits``, each extent a multiple of its
    allocation unit."""
    out = []
    for shape in itertools.product(*(range(u, lim + 1, u) for u, lim in zip(units, limits))):
        if math.prod(shape) == nodes:
            out.append(list(shape))
    return out
