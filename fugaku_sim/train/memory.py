"""The memory one rank of the trainer holds, by kind, and its peak over a measured step.

Kinds (:data:`fugaku_sim.spec.breakdown.MEMORY_KEYS`, the simulator's, with the meaning
that module gives them): the trainer tells the tracker about every array it keeps — the flat
parameter buffer or its ZeRO-3 shard plus the units gathered at the time (``weights``), the
gradient buffer or its ZeRO-2/3 shard plus the bucket buffers being filled or reduced
(``gradients``), the optimizer states (``optimizer``), each layer's cache from its forward
until its backward (``activations``, every micro-batch in flight), and the activation
passed from layer to layer, a recomputed layer's cache and pipeline messages being sent or
consumed (``workspace``) — with :meth:`MemoryTracker.hold` and :meth:`MemoryTracker.drop`,
keyed by what they are.

What a cache keeps is counted from its arrays, so under sequence parallelism a rank's
activations are what it holds: the norms', residuals' and column-parallel inputs' T / tp
tokens, the full sequence only inside the tensor-parallel regions.

What an op allocates while it runs (numpy temporaries, the output it is building) is
measured, not declared: every op runs inside :meth:`MemoryTracker.region`, which reads
:mod:`tracemalloc`'s peak (numpy reports its array allocations to it) above the traced
memory at the op's start. The peak of a step is the largest of: the held total at any
hold, and the held total at an op's start plus that op's transient; its breakdown is what
was held then by kind, the transient added to ``workspace``. ``framework`` is the
process's resident memory before the trainer allocates anything (interpreter, numpy,
OpenBLAS, MPI), read once.

Tracing costs time, so it runs during the trainer's first step only, and only that step is
measured: every step allocates the same arrays in the same order. Two cross-checks are
recorded: ``untracked``, the largest amount the step had allocated and still held at an
op's start that no hold accounts for (what the tracker misses: Python objects, the
micro-batches' token arrays), and the process's peak resident memory.
"""

from __future__ import annotations

import resource
import sys
import tracemalloc
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from fugaku_sim.spec.breakdown import MEMORY_KEYS


def resident_bytes() -> int:
    """The process's resident memory now (Linux ``/proc/self/statm``), else its peak so far
    (``getrusage``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_resident_bytes()


def peak_resident_bytes() -> int:
    """The process's peak resident memory (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class MemoryTracker:
    """Bytes held by kind, and the step peak (see the module docstring).

    ``enabled`` False makes every call a no-op (a tracker that measures nothing).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.held = dict.fromkeys(MEMORY_KEYS, 0)
        self._items: dict[Hashable, tuple[str, int]] = {}
        self.peak = dict.fromkeys(MEMORY_KEYS, 0)
        self.untracked = 0
        self.measuring = False
        self.measured = False
        self._in_region = False
        self._started_tracing = False
        self._start = (0, 0)  # (traced, held without framework) when the step began
        if enabled:
            self.held["framework"] = resident_bytes()

    # ------------------------------------------------------------------ holdings

    def hold(self, kind: str, key: Hashable, nbytes: int) -> None:
        """``key`` now holds ``nbytes`` of ``kind`` (replacing what it held before).

        Raises:
            KeyError: ``kind`` is not a memory key.
        """
        if not self.enabled:
            return
        if kind not in self.held:
            raise KeyError(kind)
        self.drop(key)
        self._items[key] = (kind, int(nbytes))
        self.held[kind] += int(nbytes)
        self._consider(self.held)

    def drop(self, key: Hashable) -> None:
        """``key`` holds nothing any more (no-op if it held nothing)."""
        if not self.enabled:
            return
        item = self._items.pop(key, None)
        if item is not None:
            self.held[item[0]] -= item[1]

    def total(self) -> int:
        return sum(self.held.values())

    # ------------------------------------------------------------------ measuring

    def start_step(self) -> None:
        """Measure the step about to run, if no step has been measured yet."""
        if not self.enabled or self.measured:
            return
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracing = True
        self.measuring = self.measured = True
        self._start = (tracemalloc.get_traced_memory()[0], self._model_held())
        self._consider(self.held)

    def end_step(self) -> None:
        """Stop measuring, and stop tracing if this tracker started it."""
        self.measuring = False
        if self._started_tracing:
            tracemalloc.stop()
            self._started_tracing = False

    def _model_held(self) -> int:
        return self.total() - self.held["framework"]

    @contextmanager
    def region(self) -> Iterator[None]:
        """An op: its transient allocations count towards the peak as ``workspace``.

        Regions do not nest: an inner region is part of the outer one.
        """
        if not self.measuring or self._in_region:
            yield
            return
        self._in_region = True
        start = dict(self.held)
        traced = tracemalloc.get_traced_memory()[0]
        # allocated since the step began and alive, beyond what the holds grew by
        grown = self._model_held() - self._start[1]
        self.untracked = max(self.untracked, traced - self._start[0] - grown)
        tracemalloc.reset_peak()
        try:
            yield
        finally:
            self._in_region = False
            extra = max(0, tracemalloc.get_traced_memory()[1] - traced)
            start["workspace"] += extra
            self._consider(start)

    def _consider(self, held: dict[str, int]) -> None:
        if self.measuring and sum(held.values()) > sum(self.peak.values()):
            self.peak = dict(held)

    def report(self) -> dict[str, Any]:
        """The measured peak by kind with its ``total``, and the cross-checks (bytes)."""
        return {**self.peak, "total": sum(self.peak.values()),
                "untracked": self.untracked, "resident_peak": peak_resident_bytes()}
