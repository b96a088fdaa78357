"""Where a stage's forward and backward find their weights: the flat buffer, or ZeRO-3 units
gathered from the data-parallel ranks for as long as they are needed.

ZeRO-3 (Rajbhandari et al. 2020, section 5.3; PyTorch FSDP, Zhao et al. 2023) keeps only
each rank's shard of the weights. The model is split into units (:func:`fugaku_sim.train.sharding.unit_groups`): the
*root* — embeddings, final norm and head — and every transformer block, as FSDP's
transformer wrapping policy does. A block is all-gathered into a buffer of its own just
before its forward and freed after it, and again for its backward; the next block's gather
starts when a block is taken (prefetch, FSDP's ``forward_prefetch`` and
``BACKWARD_PRE``). The root is gathered when a micro-batch's forward begins and freed when
its backward ends, since the backward starts with it (FSDP2 does not reshard its root
after the forward for the same reason). A cache that refers to a freed block's weights has
them taken out and put back (:func:`fugaku_sim.train.caches.detach_views`).

At most the root, the block being computed and the prefetched one are gathered at a time.
Gathers are nonblocking all-gathers on the data-parallel communicator (``Iallgather``, in
place: rank r's share is the r-th 1/dp of the unit), waited for when the unit is taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fugaku_sim.train.buffers import FlatParams, Piece
from fugaku_sim.train.caches import attach_views, detach_views
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.timers import Timers

ROOT = "root"
Unit = str | int  # ROOT or a transformer layer
Params = dict[str, np.ndarray]


class FullWeights:
    """Every weight in the flat buffer (ZeRO 0-2): taking a unit costs nothing."""

    def __init__(self, flat: FlatParams, memory: MemoryTracker | None = None) -> None:
        self.flat = flat
        if memory is not None:
            memory.hold("weights", "weights", flat.data.nbytes)

    def acquire(self, unit: Unit, prefetch: Unit | None = None) -> Params:
        return self.flat.params

    def prefetch(self, unit: Unit) -> None:
        pass

    def release(self, unit: Unit) -> None:
        pass

    def detach(self, unit: Unit, cache: Any) -> Any:
        return cache

    def attach(self, unit: Unit, cache: Any) -> Any:
        return cache

    def is_parameter(self, owner: np.ndarray) -> bool:
        """Whether ``owner`` (an array owning its memory) is weight storage."""
        return owner is self.flat.data

    def param(self, piece: Piece) -> np.ndarray:
        """The weights of an owned piece (a view, updated in place by the optimizer)."""
        return self.flat.data[piece.start:piece.end]


class GatheredWeights(FullWeights):
    """ZeRO-3: this rank's shard of every unit, gathered unit by unit (module docstring).

    ``units`` maps each unit to its segment of ``flat`` (no weights held there).
    """

    def __init__(self, flat: FlatParams, units: dict[Unit, int], dp: Any, timers: Timers,
                 memory: MemoryTracker | None = None) -> None:
        self.flat, self.dp, self.timers = flat, dp, timers
        self.memory = memory or MemoryTracker(enabled=False)
        self.units = units
        self.pieces = flat.owned(dp.rank, dp.size)
        self.shard = np.zeros(sum(p.size for p in self.pieces), dtype=flat.dtype)
        self.memory.hold("weights", "weights", self.shard.nbytes)
        self._gathered: dict[Unit, np.ndarray] = {}
        self._pending: dict[Unit, Any] = {}
        self._users: dict[Unit, int] = {}

    def param(self, piece: Piece) -> np.ndarray:
        return self.shard[piece.shard_start:piece.shard_start + piece.size]

    def prefetch(self, unit: Unit) -> None:
        """Start gathering ``unit`` (no-op if it is gathered or on its way)."""
        if unit in self._gathered:
            return
        from mpi4py import MPI

        index = self.units[unit]
        start, end = self.flat.segments[index]
        piece = self.pieces[index]
        buf = np.empty(end - start, dtype=self.flat.dtype)
        own = piece.start - start
        buf[own:own + piece.size] = self.param(piece)
        with self.timers.region("dp_comm"):
            self._pending[unit] = self.dp.Iallgather(MPI.IN_PLACE, buf)
        self._gathered[unit] = buf
        self._users[unit] = 0
        self.memory.hold("weights", ("gathered", unit), buf.nbytes)

    def acquire(self, unit: Unit, prefetch: Unit | None = None) -> Params:
        """The weights of ``unit`` (gathered; waits for them), counted as one more user until
        :meth:`release`; starts gathering ``prefetch``."""
        self.prefetch(unit)
        req = self._pending.pop(unit, None)
        if req is not None:
            with self.timers.region("dp_comm"):
                req.Wait()
        if prefetch is not None:
            self.prefetch(prefetch)
        self._users[unit] += 1
        buf = self._gathered[unit]
        start = self.flat.segments[self.units[unit]][0]
        return {n: self.flat.view(buf, n, base=start)
                for n in self.flat.segment_names[self.units[unit]]}

    def release(self, unit: Unit) -> None:
        """One user less; the last one frees the gathered weights."""
        self._users[unit] -= 1
        if self._users[unit] == 0:
            del self._gathered[unit], self._users[unit]
            self.memory.drop(("gathered", unit))

    def detach(self, unit: Unit, cache: Any) -> Any:
        return detach_views(cache, self._gathered[unit])

    def attach(self, unit: Unit, cache: Any) -> Any:
        return attach_views(cache, self._gathered[unit])

    def is_parameter(self, owner: np.ndarray) -> bool:
        return owner is self.shard or any(owner is b for b in self._gathered.values())
