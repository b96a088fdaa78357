"""Data-parallel gradient reduction in buckets, optionally overlapped with the backward.

Buckets are contiguous ranges of the flat gradient buffer of about ``grad_bucket_MB``,
closed at tensor boundaries and formed in the order gradients become final in the backward
(the reverse of the buffer order), as in Megatron-LM's ``DistributedDataParallel`` and
PyTorch DDP. Without overlap, every bucket is reduced after the backward (Fugaku-LLM's
setting). With overlap, a bucket's nonblocking reduction starts as soon as the last
micro-batch's backward has produced all its gradients; MPICH progresses it inside later MPI
calls. ZeRO stage 0 all-reduces each bucket; ZeRO-1 reduce-scatters it, so that every rank
ends with the summed gradients of its own shard of the flat buffer (Rajbhandari et al.
2020).

The tied embedding's gradient (first and last stage when pp > 1) is first summed between the
two stages (``sync_tied``) and only then reduced over data-parallel ranks, so it sits in a
bucket of its own, launched last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.timers import Timers


@dataclass(frozen=True)
class Bucket:
    """Flat range [start, end) of the gradient buffer and the tensors in it."""

    start: int
    end: int
    names: frozenset[str]
    deferred: bool  # holds the tied embedding: reduce after the cross-stage sum


def make_buckets(flat: FlatParams, bucket_bytes: float, tied: frozenset[str]) -> list[Bucket]:
    """Buckets in the order the backward completes them; together they tile [0, padded).

    Tensors in ``tied`` get a bucket of their own; the padding joins the bucket of the last
    tensor.
    """
    item = flat.data.itemsize
    groups: list[list[str]] = []
    current: list[str] = []
    size = 0
    for name in reversed(flat.names):
        start, end = flat.offsets[name]
        if name in tied:
            if current:
                groups.append(current)
                current, size = [], 0
            groups.append([name])
            continue
        current.append(name)
        size += (end - start) * item
        if size >= bucket_bytes:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    buckets = []
    for group in groups:
        start = min(flat.offsets[n][0] for n in group)
        end = max(flat.offsets[n][1] for n in group)
        end = flat.padded if end == flat.numel else end
        buckets.append(Bucket(start, end, frozenset(group), bool(tied & set(group))))
    return buckets or [Bucket(0, flat.padded, frozenset(), False)]


class GradReducer:
    """Reduce the flat gradients over the data-parallel group, bucket by bucket.

    After :meth:`finish`, ``owned_grad`` holds the summed gradients of the flat range
    ``owned`` = [shard_start, shard_end) (this rank's ZeRO shard, or its equal share of the
    buffer without ZeRO, where the whole buffer is reduced).
    """

    def __init__(self, flat: FlatParams, dp: Any, embed: Any | None, zero_stage: int,
                 overlap: bool, bucket_bytes: float, tied: frozenset[str],
                 timers: Timers) -> None:
        self.flat, self.dp, self.embed = flat, dp, embed
        self.size = dp.size if dp is not None else 1
        self.rank = dp.rank if dp is not None else 0
        self.zero, self.overlap, self.timers = zero_stage, overlap, timers
        self.tied = tied
        self.buckets = make_buckets(flat, bucket_bytes, tied)
        share = flat.padded // self.size
        self.owned = (self.rank * share, (self.rank + 1) * share)
        self.shard_bounds = [r * share for r in range(self.size + 1)]
        if zero_stage and self.size > 1:
            self.owned_grad = np.zeros(share, dtype=flat.grad.dtype)
        else:
            self.owned_grad = flat.grad[self.owned[0]:self.owned[1]]
        self._ready: set[str] = set()
        self._launched: set[int] = set()
        self._requests: list[Any] = []

    def start_step(self) -> None:
        self._ready.clear()
        self._launched.clear()
        self._requests.clear()

    def mark_ready(self, names: list[str]) -> None:
        """The final gradients of ``names`` are in the buffer; launch complete buckets."""
        if not self.overlap or self.size == 1:
            return
        self._ready.update(names)
        for i, b in enumerate(self.buckets):
            if i not in self._launched and not b.deferred and b.names <= self._ready:
                self._launch(i, blocking=False)

    def finish(self) -> None:
        """Sum the tied embedding over stages, reduce what remains, wait for everything."""
        self.sync_tied()
        for i in range(len(self.buckets)):
            if i not in self._launched:
                self._launch(i, blocking=not self.overlap)
        if self._requests:
            from mpi4py import MPI

            with self.timers.region("dp_comm"):
                MPI.Request.Waitall(self._requests)
            self._requests.clear()

    def sync_tied(self) -> None:
        """All-reduce the tied embedding gradient between the first and last stage."""
        if self.embed is None:
            return
        from mpi4py import MPI

        with self.timers.region("pp_comm"):
            for name in sorted(self.tied):
                self.embed.Allreduce(MPI.IN_PLACE, self.flat.grads[name], op=MPI.SUM)

    def _launch(self, index: int, blocking: bool) -> None:
        self._launched.add(index)
        if self.size == 1:
            return
        from mpi4py import MPI

        b = self.buckets[index]
        send = self.flat.grad[b.start:b.end]
        with self.timers.region("dp_comm"):
            if not self.zero:
                if blocking:
                    self.dp.Allreduce(MPI.IN_PLACE, send, op=MPI.SUM)
                else:
                    self._requests.append(self.dp.Iallreduce(MPI.IN_PLACE, send, op=MPI.SUM))
                return
            counts = [max(0, min(b.end, hi) - max(b.start, lo))
                      for lo, hi in zip(self.shard_bounds[:-1], self.shard_bounds[1:])]
            lo = max(b.start, self.owned[0]) - self.owned[0]
            recv = self.owned_grad[lo:lo + counts[self.rank]]
            if blocking:
                self.dp.Reduce_scatter(send, recv, counts, op=MPI.SUM)
            else:
                self._requests.append(self.dp.Ireduce_scatter(send, recv, counts, op=MPI.SUM))
