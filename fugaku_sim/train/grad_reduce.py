"""Data-parallel gradient reduction in buckets, optionally overlapped with the backward.

Buckets are the segments of the flat buffer (:class:`fugaku_sim.train.buffers.FlatParams`):
contiguous runs of about ``grad_bucket_MB``, closed at tensor boundaries and formed in the
order gradients become final in the backward (the reverse of the buffer order), as in
Megatron-LM's ``DistributedDataParallel`` and PyTorch DDP; each is padded to a multiple of
dp, so that rank r owns its r-th 1/dp.

ZeRO 0 and 1 (:class:`GradReducer`): the gradients of every micro-batch accumulate in the
full flat buffer, and each bucket is reduced once per step. Without overlap, every bucket
is reduced after the backward (Fugaku-LLM's setting). With overlap, a bucket's nonblocking
reduction starts as soon as the last micro-batch's backward has produced all its
gradients; MPICH progresses it inside later MPI calls. ZeRO-0 all-reduces each bucket;
ZeRO-1 reduce-scatters it in place (the rank's summed share lands at the bucket's start and
is moved to its own slice), so that every rank ends with the summed gradients of what it
owns (Rajbhandari et al. 2020).

ZeRO 2 and 3 (:class:`ShardedGradReducer`): no full gradient buffer. Each micro-batch's
backward writes into a bucket buffer taken when its first gradient arrives; once the
bucket is complete it is reduce-scattered (nonblocking with overlap, at most
:data:`~fugaku_sim.spec.train.ZERO_BUCKETS_IN_FLIGHT` at a time) and the rank adds its share into its gradient
shard, then the buffer is freed. This reduces every micro-batch, as DeepSpeed's ZeRO
stage 2 does (``deepspeed/runtime/zero/stage_1_and_2.py``: the gradient hooks reduce each
bucket into the partitioned gradients at every backward, with gradient accumulation
too): accumulating locally and reducing once would need the full gradient buffer ZeRO-2
removes, at the price of m times the reduce-scatter volume with m micro-batches.

The tied embedding's gradient (first and last stage when pp > 1) is summed between the two
stages (``sync_tied``). Under ZeRO 0/1 that happens on the full tensor before its bucket,
held back until then (``deferred``), is reduced over dp; under ZeRO-2 it happens after the
step's reductions, on the two stages' owned shares, which cover the same elements because
the tensor is a bucket of its own, padded alike on both stages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from fugaku_sim.spec.train import ZERO_BUCKETS_IN_FLIGHT
from fugaku_sim.train.buffers import FlatParams, Piece
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.timers import Timers


def bucket_groups(entries: list[tuple[str, int]], bucket_bytes: float, tied: frozenset[str],
                  breaks: frozenset[str] = frozenset(), item_bytes: int = 4
                  ) -> list[list[str]]:
    """Tensor names (with their sizes) grouped into gradient buckets, in buffer order.

    Formed backwards: a bucket closes once it holds ``bucket_bytes``, before and after a
    tensor in ``tied`` (a bucket of its own), and after a tensor in ``breaks`` (the first
    tensor of a model chunk, so no bucket spans two chunks' backwards).
    """
    groups: list[list[str]] = []
    current: list[str] = []
    size = 0
    for name, numel in reversed(entries):
        if name in tied:
            if current:
                groups.append(current)
            groups.append([name])
            current, size = [], 0
            continue
        current.append(name)
        size += numel * item_bytes
        if size >= bucket_bytes or name in breaks:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return [list(reversed(g)) for g in reversed(groups)]


@dataclass(frozen=True)
class Bucket:
    """Segment ``index`` of the flat buffer: flat [start, end) and the tensors in it."""

    index: int
    start: int
    end: int
    names: frozenset[str]
    deferred: bool  # holds the tied embedding: reduce after the cross-stage sum (ZeRO 0/1)


def make_buckets(flat: FlatParams, tied: frozenset[str]) -> list[Bucket]:
    """The flat buffer's segments as buckets, in the order the backward completes them."""
    out = [Bucket(i, s, e, frozenset(names), bool(tied & set(names)))
           for i, ((s, e), names) in enumerate(zip(flat.segments, flat.segment_names))]
    return out[::-1]


class GradReducer:
    """ZeRO 0 and 1: reduce the full flat gradients over dp, bucket by bucket, once a step.

    ``grads`` is what the backward adds into; ``update`` the pieces this rank updates and
    ``counted`` those whose gradients it counts in the global norm (its 1/dp share, so
    that each is counted once); :meth:`grad` the summed gradients of a piece.
    """

    def __init__(self, flat: FlatParams, dp: Any, embed: Any | None, zero_stage: int,
                 overlap: bool, tied: frozenset[str], timers: Timers,
                 memory: MemoryTracker | None = None) -> None:
        self.flat, self.dp, self.embed = flat, dp, embed
        self.size = dp.size if dp is not None else 1
        self.rank = dp.rank if dp is not None else 0
        self.zero = zero_stage if self.size > 1 else 0
        self.overlap, self.timers, self.tied = overlap, timers, tied
        self.memory = memory or MemoryTracker(enabled=False)
        self.buckets = make_buckets(flat, tied)
        self.bucket_of = {n: b for b in self.buckets for n in b.names}
        self.counted = flat.owned(self.rank, self.size)
        self.update = self.counted if self.zero else flat.owned(0, 1)
        self.grads: Any = flat.grads
        self.memory.hold("gradients", "gradient buffer", flat.grad.nbytes)
        self._waiting: dict[int, set[str]] = {}
        self._launched: set[int] = set()
        self._requests: list[Any] = []

    def grad(self, piece: Piece) -> np.ndarray:
        """The summed gradients of ``piece`` (a view; valid after :meth:`finish`)."""
        return self.flat.grad[piece.start:piece.end]

    def start_step(self) -> None:
        self.flat.zero_grad()
        self._waiting = {b.index: set(b.names) for b in self.buckets}
        self._launched.clear()
        self._requests.clear()

    def grads_ready(self, names: list[str], final: bool) -> None:
        """The backward has added its gradients of ``names``; ``final``: for the last time
        this step. Launch the buckets that are complete (with overlap)."""
        if not final or not self.overlap or self.size == 1:
            return
        for b in self._touched(names):
            self._waiting[b.index] -= set(names)
            if not self._waiting[b.index] and not b.deferred and b.index not in self._launched:
                self._launch(b, blocking=False)

    def _touched(self, names: list[str]) -> list[Bucket]:
        """The buckets holding ``names``, in backward order: every rank must start its
        collectives in the same order (never a set's, which hashing orders per process)."""
        indices = {self.bucket_of[n].index for n in names}
        return [b for b in self.buckets if b.index in indices]

    def finish(self) -> None:
        """Sum the tied embedding over stages, reduce what remains, wait for everything."""
        self.sync_tied()
        for b in self.buckets:
            if b.index not in self._launched:
                self._launch(b, blocking=not self.overlap)
        if self._requests:
            from mpi4py import MPI

            with self.timers.region("dp_comm"):
                MPI.Request.Waitall(self._requests)
            self._requests.clear()
        if self.zero and self.size > 1:
            for b in self.buckets:  # each rank's summed share sits at its bucket's start
                share = (b.end - b.start) // self.size
                if self.rank:
                    lo = b.start + self.rank * share
                    self.flat.grad[lo:lo + share] = self.flat.grad[b.start:b.start + share]

    def sync_tied(self) -> None:
        """All-reduce the tied embedding gradient between the first and last stage."""
        if self.embed is None:
            return
        from mpi4py import MPI

        with self.timers.region("pp_comm"):
            for name in sorted(self.tied):
                self.embed.Allreduce(MPI.IN_PLACE, self.flat.grads[name], op=MPI.SUM)

    def _launch(self, b: Bucket, blocking: bool) -> None:
        self._launched.add(b.index)
        if self.size == 1:
            return
        from mpi4py import MPI

        buf = self.flat.grad[b.start:b.end]
        with self.timers.region("dp_comm"):
            if not self.zero:
                if blocking:
                    self.dp.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                else:
                    self._requests.append(self.dp.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
            elif blocking:  # in place: the result is the first 1/dp of the bucket
                self.dp.Reduce_scatter_block(MPI.IN_PLACE, buf, op=MPI.SUM)
            else:
                self._requests.append(self.dp.Ireduce_scatter_block(MPI.IN_PLACE, buf,
                                                                    op=MPI.SUM))


class _BucketViews:
    """The gradients the backward adds into under ZeRO-2/3: views of open bucket buffers."""

    def __init__(self, reducer: ShardedGradReducer) -> None:
        self.reducer = reducer
        self.views: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        view = self.views.get(name)
        if view is None:
            b = self.reducer.bucket_of[name]
            buf = self.reducer.open(b)
            view = self.views[name] = self.reducer.flat.view(buf, name, base=b.start)
        return view

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        view = self[name]
        if value is not view:  # ``grads[n] += g`` hands the same view back
            view[...] = value

    def __contains__(self, name: object) -> bool:
        return name in self.reducer.bucket_of


class ShardedGradReducer(GradReducer):
    """ZeRO 2 and 3: reduce-scatter every micro-batch's buckets into a gradient shard."""

    def __init__(self, flat: FlatParams, dp: Any, embed: Any | None, zero_stage: int,
                 overlap: bool, tied: frozenset[str], timers: Timers,
                 memory: MemoryTracker | None = None) -> None:
        super().__init__(flat, dp, embed, zero_stage, overlap, tied, timers, memory)
        self.update = self.counted
        self.shard = np.zeros(sum(p.size for p in self.counted), dtype=flat.dtype)
        self.memory.hold("gradients", "gradient buffer", self.shard.nbytes)
        self.grads = _BucketViews(self)
        self._open: dict[int, np.ndarray] = {}
        self._flight: deque[tuple[Bucket, Any, np.ndarray]] = deque()

    def grad(self, piece: Piece) -> np.ndarray:
        return self.shard[piece.shard_start:piece.shard_start + piece.size]

    def start_step(self) -> None:
        self.shard.fill(0)
        self._waiting = {b.index: set(b.names) for b in self.buckets}

    def open(self, b: Bucket) -> np.ndarray:
        """The buffer of bucket ``b`` for the micro-batch in its backward (zeroed when new)."""
        buf = self._open.get(b.index)
        if buf is None:
            for item in [f for f in self._flight if f[0].index == b.index]:
                self._complete(item)  # its last micro-batch's share goes in first
            buf = self._open[b.index] = np.zeros(b.end - b.start, dtype=self.flat.dtype)
            self.memory.hold("gradients", ("gradient bucket", b.index), buf.nbytes)
        return buf

    def grads_ready(self, names: list[str], final: bool) -> None:
        for b in self._touched(names):
            self._waiting[b.index] -= set(names)
            if not self._waiting[b.index]:
                self._waiting[b.index] = set(b.names)
                self._launch(b, blocking=not self.overlap)

    def _launch(self, b: Bucket, blocking: bool) -> None:
        from mpi4py import MPI

        buf = self._open.pop(b.index)
        for name in b.names:
            self.grads.views.pop(name, None)
        with self.timers.region("dp_comm"):
            if blocking:
                self.dp.Reduce_scatter_block(MPI.IN_PLACE, buf, op=MPI.SUM)
                self._accumulate(b, buf)
                return
            if len(self._flight) >= ZERO_BUCKETS_IN_FLIGHT:
                self._complete(self._flight[0])
            req = self.dp.Ireduce_scatter_block(MPI.IN_PLACE, buf, op=MPI.SUM)
            self._flight.append((b, req, buf))

    def _complete(self, item: tuple[Bucket, Any, np.ndarray]) -> None:
        b, req, buf = item
        with self.timers.region("dp_comm"):
            req.Wait()
        self._flight = deque(f for f in self._flight if f is not item)
        self._accumulate(b, buf)

    def _accumulate(self, b: Bucket, buf: np.ndarray) -> None:
        piece = self.counted[b.index]
        self.grad(piece)[...] += buf[:piece.size]  # in place: the share is at the start
        self.memory.drop(("gradient bucket", b.index))

    def finish(self) -> None:
        """Complete every reduction, then sum the tied embedding's shares over stages."""
        while self._flight:
            self._complete(self._flight[0])
        if self._open:
            raise RuntimeError(f"gradient buckets {sorted(self._open)} were never completed")
        if self.embed is None:
            return
        from mpi4py import MPI

        with self.timers.region("pp_comm"):
            for name in sorted(self.tied):
                self.embed.Allreduce(MPI.IN_PLACE, self.grad(self.counted[
                    self.bucket_of[name].index]), op=MPI.SUM)
