"""One flat FP32 buffer for a rank's parameters and one for their gradients.

Every tensor a rank holds is a view into ``data`` (and its gradient a view into ``grad``), in
a fixed order, so that the data-parallel reduction works on contiguous buckets, ZeRO-1 shards
the flat range evenly over the data-parallel ranks, and the optimizer runs vectorised over
one array (as Megatron-LM's ``DistributedDataParallel`` grad buffer and distributed optimizer
do). The length is padded to a multiple of ``pad_to`` (the data-parallel degree).
"""

from __future__ import annotations

import math

import numpy as np


class FlatParams:
    """Parameters and gradients of ``entries`` (name, local shape), in that order."""

    def __init__(self, entries: list[tuple[str, tuple[int, ...]]], pad_to: int = 1,
                 dtype: type[np.floating] = np.float32) -> None:
        self.names = [name for name, _ in entries]
        self.shapes = {name: shape for name, shape in entries}
        self.offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, shape in entries:
            size = math.prod(shape)
            self.offsets[name] = (offset, offset + size)
            offset += size
        self.numel = offset
        self.padded = -(-offset // pad_to) * pad_to if offset else pad_to
        self.data = np.zeros(self.padded, dtype=dtype)
        self.grad = np.zeros(self.padded, dtype=dtype)
        self.params = {n: self._view(self.data, n) for n in self.names}
        self.grads = {n: self._view(self.grad, n) for n in self.names}

    def _view(self, flat: np.ndarray, name: str) -> np.ndarray:
        start, end = self.offsets[name]
        return flat[start:end].reshape(self.shapes[name])

    def mask(self, names: set[str] | frozenset[str]) -> np.ndarray:
        """A flat 0/1 array (the buffer's dtype) that is 1 over the tensors in ``names``."""
        out = np.zeros(self.padded, dtype=self.data.dtype)
        for name in names:
            start, end = self.offsets[name]
            out[start:end] = 1
        return out

    def zero_grad(self) -> None:
        self.grad.fill(0)
