"""Measured time per step, split into the simulator's breakdown keys.

Keys (seconds, :data:`fugaku_sim.spec.breakdown.BREAKDOWN_KEYS`, the same as
``predict --json``'s ``breakdown_s``), as the trainer charges them:

- ``compute``: forward and backward passes of the layers on this rank, excluding the time
  spent inside the other regions nested in them.
- ``recompute``: the extra forwards of stages that recompute activations.
- ``tp_comm``: tensor-parallel all-reduces (blocks, embedding, cross-entropy).
- ``pp_comm``: receiving a message once it has arrived, posting and completing sends, and the
  tied-embedding gradient all-reduce between the first and last stage.
- ``dp_comm``: data-parallel gradient reduction (what is not hidden behind the backward) and
  the ZeRO-1 parameter all-gather.
- ``bubble``: waiting for a pipeline neighbour's message to arrive (``MPI.Probe``).
- ``optimizer``: gradient norm, clipping and the parameter update.

Regions nest: the time of an inner region is charged to it and subtracted from the outer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS


class Timers:
    """Seconds accumulated per breakdown key, with nesting-aware regions.

    ``clock`` returns seconds (``MPI.Wtime`` in the trainer; ``time.perf_counter`` by default).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
        self._charged = 0.0  # total charged to any key, to subtract nested regions

    @contextmanager
    def region(self, key: str) -> Iterator[None]:
        """Charge the wall time of the block, minus nested regions, to ``key``.

        Raises:
            KeyError: ``key`` is not a breakdown key.
        """
        if key not in self.seconds:
            raise KeyError(key)
        start, charged = self.clock(), self._charged
        try:
            yield
        finally:
            own = self.clock() - start - (self._charged - charged)
            self.seconds[key] += own
            self._charged += own

    def reset(self) -> dict[str, float]:
        """Return the accumulated seconds and start again from zero."""
        out = dict(self.seconds)
        self.seconds = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
        self._charged = 0.0
        return out
