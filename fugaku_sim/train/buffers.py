"""The flat FP32 layout of a rank's parameters and gradients, in segments sharded over dp.

Every tensor a rank holds is a view into ``data`` (and its gradient a view into ``grad``), in
a fixed order, so that the data-parallel reduction works on contiguous ranges and the
optimizer runs vectorised (as Megatron-LM's ``DistributedDataParallel`` grad buffer and
distributed optimizer do). The tensors are grouped into segments — the gradient buckets,
or the units ZeRO-3 gathers — and each segment is padded to a multiple of ``pad_to`` (the
data-parallel degree) and split evenly: data-parallel rank r owns the r-th 1/dp of every
segment (Megatron-LM pads and shards each bucket of its buffer the same way), so every
reduce-scatter and all-gather moves equal shares. A rank's owned ranges, concatenated in
segment order, are its *shard*: the optimizer states under ZeRO-1/2/3, the gradients under
ZeRO-2/3 and the weights under ZeRO-3 live in shard order.

Under ZeRO-2 the buffer holds no gradients (``hold_grad`` False) and under ZeRO-3 no
parameters either (``hold_data`` False): the layout is still what places every tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Piece:
    """One owned range: flat [start, end) and where it begins in the shard."""

    start: int
    end: int
    shard_start: int

    @property
    def size(self) -> int:
        return self.end - self.start


class FlatParams:
    """Parameters and gradients of ``entries`` (name, local shape).

    ``groups`` lists the names of each segment in buffer order (default: one segment of
    all, in ``entries`` order); every name of ``entries`` is in exactly one group.

    Raises:
        ValueError: ``groups`` does not partition the names of ``entries``.
    """

    def __init__(self, entries: list[tuple[str, tuple[int, ...]]], pad_to: int = 1,
                 groups: list[list[str]] | None = None, dtype: type[np.floating] = np.float32,
                 hold_data: bool = True, hold_grad: bool = True) -> None:
        self.shapes = {name: shape for name, shape in entries}
        groups = groups if groups is not None else [[n for n, _ in entries]]
        order = [n for g in groups for n in g]
        if sorted(order) != sorted(self.shapes) or len(set(order)) != len(order):
            raise ValueError("groups must list every tensor exactly once")
        self.names = order
        self.pad_to = pad_to
        self.offsets: dict[str, tuple[int, int]] = {}
        self.segments: list[tuple[int, int]] = []
        self.segment_names: list[list[str]] = []
        offset = 0
        for group in groups:
            start = offset
            for name in group:
                size = math.prod(self.shapes[name])
                self.offsets[name] = (offset, offset + size)
                offset += size
            offset = start + max(pad_to, -(-(offset - start) // pad_to) * pad_to)
            self.segments.append((start, offset))
            self.segment_names.append(list(group))
        self.numel = sum(e - s for s, e in self.offsets.values())
        self.padded = offset
        self.dtype = np.dtype(dtype)
        self.data = np.zeros(self.padded if hold_data else 0, dtype=dtype)
        self.grad = np.zeros(self.padded if hold_grad else 0, dtype=dtype)
        self.params = {n: self.view(self.data, n) for n in self.names} if hold_data else {}
        self.grads = {n: self.view(self.grad, n) for n in self.names} if hold_grad else {}

    def view(self, flat: np.ndarray, name: str, base: int = 0) -> np.ndarray:
        """``name``'s tensor inside ``flat``, an array laid out from flat offset ``base``."""
        start, end = self.offsets[name]
        return flat[start - base:end - base].reshape(self.shapes[name])

    def owned(self, rank: int, size: int) -> list[Piece]:
        """The pieces data-parallel rank ``rank`` of ``size`` owns: the rank-th 1/size of
        every segment (``size`` must divide ``pad_to``'s multiples: use pad_to = dp)."""
        pieces, shard = [], 0
        for start, end in self.segments:
            share = (end - start) // size
            pieces.append(Piece(start + rank * share, start + (rank + 1) * share, shard))
            shard += share
        return pieces

    def shard_of(self, flat: np.ndarray, pieces: list[Piece]) -> np.ndarray:
        """The concatenation of ``flat``'s owned ``pieces`` (a new array, shard order)."""
        return np.concatenate([flat[p.start:p.end] for p in pieces]) if pieces else flat[:0]

    def ranges_of(self, names: set[str] | frozenset[str], piece: Piece) -> list[tuple[int, int]]:
        """Where the tensors ``names`` lie in ``piece``, as [lo, hi) relative to its start."""
        out = []
        for name in self.names:
            if name not in names:
                continue
            start, end = self.offsets[name]
            lo, hi = max(start, piece.start), min(end, piece.end)
            if lo < hi:
                out.append((lo - piece.start, hi - piece.start))
        return out

    def zero_grad(self) -> None:
        self.grad.fill(0)
