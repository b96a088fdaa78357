"""FlowNetwork: links as shared resources in simpy, bandwidth split max-min fairly.

A transfer is a flow of bytes over a route (a list of link ids). Whenever flows start or
finish, the rates of all live flows are recomputed by progressive filling (max-min fairness:
raise every unfrozen flow's rate together until a link is full or a flow reaches its own
cap, freeze those flows, repeat; Bertsekas and Gallager, "Data Networks", 1992, section 6.5.2)
and the next completion is scheduled. This is the fluid flow model of SimGrid (Velho et al.,
"On the validity of flow-level TCP network models for grid and cloud simulations", ACM
TOMACS 2013) without its TCP corrections. Time is in seconds, sizes in bytes.

Flows that start at the same instant are priced together: rates are recomputed once per
instant, in a zero-delay callback, not once per flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

_EPS = 1e-9


@dataclass
class _Flow:
    links: np.ndarray
    remaining: float
    cap: float
    done: simpy.Event
    rate: float = 0.0
    size: float = field(default=0.0)


class FlowNetwork:
    """Live flows over links of the given capacities (bytes/s)."""

    def __init__(self, env: simpy.Environment, capacities: np.ndarray):
        self.env = env
        self.capacities = np.asarray(capacities, dtype=float)
        self.flows: list[_Flow] = []
        self._last = 0.0
        self._pending = False
        self._generation = 0
        self.recomputations = 0

    def transfer(
        self, links: list[int], nbytes: float, cap_Bps: float = float("inf")
    ) -> simpy.Event:
        """Start a flow of ``nbytes`` over ``links``; the event fires when it has arrived."""
        done = self.env.event()
        if nbytes <= 0:
            done.succeed()
            return done
        self._advance()
        self.flows.append(
            _Flow(np.asarray(links, dtype=np.int64), nbytes, cap_Bps, done, size=nbytes)
        )
        self._schedule_recompute()
        return done

    def _advance(self) -> None:
        dt = self.env.now - self._last
        if dt > 0:
            for f in self.flows:
                f.remaining -= f.rate * dt
        self._last = self.env.now

    def _schedule_recompute(self) -> None:
        if not self._pending:
            self._pending = True
            ev = self.env.timeout(0)
            ev.callbacks.append(self._recompute)

    def _recompute(self, _event: object = None) -> None:
        self._pending = False
        self._advance()
        self._finish_done()
        if not self.flows:
            return
        self.recomputations += 1
        rates = max_min_rates(
            [f.links for f in self.flows], [f.cap for f in self.flows], self.capacities
        )
        for f, r in zip(self.flows, rates):
            f.rate = float(r)
        dt = min(f.remaining / f.rate for f in self.flows)
        self._generation += 1
        gen = self._generation
        ev = self.env.timeout(max(dt, 0.0))
        ev.callbacks.append(lambda _e: self._on_completion(gen))

    def _on_completion(self, generation: int) -> None:
        if generation != self._generation:
            return  # superseded by a later recomputation
        self._advance()
        self._finish_done()
        self._schedule_recompute()

    def _finish_done(self) -> None:
        live = []
        for f in self.flows:
            if f.remaining <= _EPS * max(f.size, 1.0):
                f.done.succeed()
            else:
                live.append(f)
        self.flows = live


def max_min_rates(
    routes: list[np.ndarray], caps: list[float], capacities: np.ndarray
) -> np.ndarray:
    """Max-min fair rates (bytes/s) of flows over links by progressive filling."""
    n = len(routes)
    lengths = np.array([len(r) for r in routes])
    flow_of = np.repeat(np.arange(n), lengths)
    links = np.concatenate(routes) if n else np.zeros(0, dtype=np.int64)
    used, local = np.unique(links, return_inverse=True)
    left = capacities[used].astype(float)
    cap = np.asarray(caps, dtype=float)
    rate = np.zeros(n)
    frozen = np.zeros(n, dtype=bool)
    while not frozen.all():
        active = ~frozen[flow_of]
        count = np.bincount(local[active], minlength=used.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(count > 0, left / count, np.inf)
        step = min(share.min(), (cap - rate)[~frozen].min())
        rate[~frozen] += step
        left -= step * count
        full = left <= 1e-12 * np.maximum(capacities[used], 1.0)
        hit = np.zeros(n, dtype=bool)
        hit[flow_of[active & full[local]]] = True
        hit |= ~frozen & (rate >= cap * (1 - 1e-12))
        frozen |= hit
    return rate
