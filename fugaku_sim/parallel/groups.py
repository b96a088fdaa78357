"""Rank groups: which ranks form tensor-, pipeline- and data-parallel groups.

Pure arithmetic: degrees in, lists of ranks out. The simulator and the MPI trainer both call
it, so a prediction and a measured run describe the same groups.

Worked example (Megatron's ``tp-dp-pp`` order, tensor peers on consecutive ranks), 8 ranks,
tp = 2, pp = 2, dp = 2::

    rank = tp_rank + tp * (dp_rank + dp * pp_rank)
    tensor groups   [[0, 1], [2, 3], [4, 5], [6, 7]]
    data groups     [[0, 2], [1, 3], [4, 6], [5, 7]]
    pipeline groups [[0, 4], [1, 5], [2, 6], [3, 7]]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, cast

Axis = Literal["tp", "pp", "dp"]
AXES: tuple[Axis, ...] = ("tp", "dp", "pp")
#: every rank numbering, fastest-varying axis first (Megatron's default ``tp-dp-pp`` first)
RANK_ORDERS = tuple("-".join(p) for p in itertools.permutations(AXES))


@dataclass(frozen=True)
class RankCoords:
    """Where one rank sits in the tp x pp x dp grid."""

    tp: int
    pp: int
    dp: int


@dataclass(frozen=True)
class RankGrid:
    """The tp x pp x dp grid of ranks, numbered in ``order`` (fastest-varying axis first)."""

    tp: int
    pp: int
    dp: int
    order: str = "tp-dp-pp"

    def __post_init__(self) -> None:
        if min(self.tp, self.pp, self.dp) < 1:
            raise ValueError(f"degrees must be >= 1, got tp={self.tp} pp={self.pp} dp={self.dp}")
        if self.order not in RANK_ORDERS:
            raise ValueError(f"order must be a permutation of tp, dp, pp; got {self.order!r}")

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def axes(self) -> tuple[Axis, ...]:
        return cast(tuple[Axis, ...], tuple(self.order.split("-")))

    def size(self, axis: Axis) -> int:
        return int(getattr(self, axis))

    def rank(self, tp: int, pp: int, dp: int) -> int:
        """The rank at grid coordinates (tp, pp, dp)."""
        coords = {"tp": tp, "pp": pp, "dp": dp}
        rank, stride = 0, 1
        for axis in self.axes:
            if not 0 <= coords[axis] < self.size(axis):
                raise ValueError(f"{axis} coordinate {coords[axis]} out of range")
            rank += coords[axis] * stride
            stride *= self.size(axis)
        return rank

    def coords(self, rank: int) -> RankCoords:
        """Grid coordinates of ``rank``."""
        if not 0 <= rank < self.world:
            raise ValueError(f"rank {rank} out of range for world size {self.world}")
        values: dict[str, int] = {}
        for axis in self.axes:
            values[axis] = rank % self.size(axis)
            rank //= self.size(axis)
        return RankCoords(tp=values["tp"], pp=values["pp"], dp=values["dp"])

    def group(self, rank: int, axis: Axis) -> list[int]:
        """The ranks that share every coordinate with ``rank`` except ``axis``, in order."""
        c = self.coords(rank)
        base = {"tp": c.tp, "pp": c.pp, "dp": c.dp}
        members = []
        for i in range(self.size(axis)):
            base[axis] = i
            members.append(self.rank(base["tp"], base["pp"], base["dp"]))
        return members

    def groups(self, axis: Axis) -> list[list[int]]:
        """Every group along ``axis``, each sorted by its coordinate on that axis."""
        seen: set[int] = set()
        out = []
        for rank in range(self.world):
            if rank not in seen:
                members = self.group(rank, axis)
                seen.update(members)
                out.append(members)
        return out

    def tensor_groups(self) -> list[list[int]]:
        return self.groups("tp")

    def pipeline_groups(self) -> list[list[int]]:
        return self.groups("pp")

    def data_groups(self) -> list[list[int]]:
        return self.groups("dp")

    def pipeline_neighbours(self, rank: int) -> tuple[int | None, int | None]:
        """(previous stage's rank, next stage's rank) for ``rank``; None at the ends."""
        group = self.group(rank, "pp")
        stage = self.coords(rank).pp
        prev = group[stage - 1] if stage > 0 else None
        nxt = group[stage + 1] if stage + 1 < self.pp else None
        return prev, nxt
