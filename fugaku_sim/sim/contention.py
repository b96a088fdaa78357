"""Contention: collectives that run at once on rings that meet, in the fast mode.

The fast mode prices each collective with the plan of its group kind on its stage
(:class:`~fugaku_sim.sim.comm.CommModel`: every group of the kind on the stage at once,
nothing else). Two such collectives can run at the same moment and share a link:

- the tensor collectives of different stages: in steady state every stage runs a pass at
  once, and a placement that interleaves stages (linear, with tp not the fastest rank
  order) lays their rings over the same links;
- ZeRO's data-parallel traffic during a pass beside the stage's own tensor collectives, and
  the data-parallel collectives of different stages (ZeRO-1's and 2's weight all-gather
  after one stage's optimizer step while the stage before still reduces, ZeRO-2's
  reductions during every backward).

An *entity* is a group kind on a stage, ``("tp", s)`` or ``("dp", s)``: all its groups'
collective. Two entities *meet* when some phase of one, priced together with some phase of
the other, is slower than either alone: their rings share a link that becomes the
bottleneck. :class:`Contention` finds that and prices a phase of an entity with the live
entities it meets (a same-kind entity with its same phase, as identical stages step through
their phases together; another kind with each of its phases in turn, weighted by the time
each takes). :class:`LinkShare` runs the collectives of a step as a fluid: each drains its
bandwidth term (what its plan prices alone) at the rate the live entities it meets allow,
recomputed whenever one starts or ends -- the fluid model of :mod:`fugaku_sim.sim.network`
at the granularity of whole entities, with the plans' prices for links. Latency terms are
not shared.

Where nothing meets, the fast mode folds each pass into one timeout
(:func:`fugaku_sim.sim.segments.time_pass`) and this module is not used.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from fugaku_sim.sim.collectives import Collective
from fugaku_sim.sim.comm import CommModel, GroupKind, pair_flows, ring_pairs
from fugaku_sim.spec.job import Job

#: a group kind on a pipeline stage: the collective all its groups run at once
Entity = tuple[GroupKind, int]
#: one phase of one algorithm of an entity
Part = tuple[Entity, str, int]
#: a rise in seconds per byte smaller than this is rounding, not contention
TOLERANCE = 1e-9


class Contention:
    """Which entities of a placed job meet, and how much slower they run together."""

    def __init__(self, comm: CommModel):
        self.comm = comm
        self._spb: dict[tuple[Part, ...], float] = {}
        self._meets: dict[frozenset[Entity], bool] = {}
        self._slowdown: dict[tuple[Entity, str, frozenset[Entity]], float] = {}

    def alone(self, part: Part) -> float:
        (kind, stage), name, k = part
        return self.comm.plan(kind, stage).phases(name)[k].seconds_per_byte

    def together(self, parts: tuple[Part, ...]) -> float:
        """Seconds per byte of ``parts`` running at once, or of the first alone when no
        link they share is their bottleneck."""
        key = tuple(sorted(parts))
        if key not in self._spb:
            pairs = [ring_pairs(self.comm.rings(kind, s)[name][k].rings)
                     for (kind, s), name, k in key]
            flows = pair_flows(np.concatenate([a for a, _ in pairs]),
                               np.concatenate([b for _, b in pairs]), self.comm.placement)
            joint = self.comm.network.seconds_per_byte(flows)
            worst = max(self.alone(p) for p in key)
            self._spb[key] = joint if joint > worst * (1 + TOLERANCE) else -1.0
        spb = self._spb[key]
        return spb if spb >= 0 else self.alone(parts[0])

    def parts(self, entity: Entity) -> list[Part]:
        return [(entity, name, k) for name, sets in self.comm.rings(*entity).items()
                for k in range(len(sets))]

    def meets(self, a: Entity, b: Entity) -> bool:
        """Whether some phase of ``a`` and some phase of ``b`` slow each other down (the
        same phase of the same algorithm for two entities of one kind)."""
        key = frozenset((a, b))
        if key not in self._meets:
            if a[0] == b[0]:
                pairs = [(p, (b, p[1], p[2])) for p in self.parts(a)
                         if p[1] in self.comm.rings(*b)]
            else:
                pairs = list(itertools.product(self.parts(a), self.parts(b)))
            self._meets[key] = a != b and any(
                self.together(pair) > self.alone(pair[0]) * (1 + TOLERANCE)
                or self.together(pair[::-1]) > self.alone(pair[1]) * (1 + TOLERANCE)
                for pair in pairs)
        return self._meets[key]

    def stages_meet(self, kind: GroupKind) -> bool:
        """Whether the ``kind`` rings of some two stages meet: first one check with every
        stage's rings at once (cheap on a large job where none meet), then pair by pair."""
        pp = self.comm.grid.pp
        size = self.comm.grid.tp if kind == "tp" else self.comm.grid.dp
        if size == 1 or pp == 1:
            return False
        for name, sets in self.comm.rings(kind, 0).items():
            for k in range(len(sets)):
                parts = tuple(((kind, s), name, k) for s in range(pp)
                              if name in self.comm.rings(kind, s))
                if self.together(parts) > max(self.alone(p) for p in parts) * (1 + TOLERANCE):
                    return any(self.meets((kind, a), (kind, b))
                               for a in range(pp) for b in range(a + 1, pp))
        return False

    def _bulk(self, entity: Entity) -> str:
        """The algorithm with the smallest bandwidth term (what a large message uses)."""
        plan = self.comm.plan(*entity)
        return min(plan.names, key=lambda n: sum(p.bandwidth_time_s(1.0) for p in plan.phases(n)))

    def slowdown(self, entity: Entity, algorithm: str, live: frozenset[Entity]) -> float:
        """How much longer the bandwidth term of ``entity``'s collective (``algorithm``)
        takes while the entities in ``live`` (those it meets) run theirs."""
        key = (entity, algorithm, live)
        if key in self._slowdown:
            return self._slowdown[key]
        own = self.comm.plan(*entity).phases(algorithm)
        same = [o for o in live if o[0] == entity[0] and algorithm in self.comm.rings(*o)]
        others = []
        for o in (o for o in live if o[0] != entity[0]):
            name = self._bulk(o)
            phases = self.comm.plan(*o).phases(name)
            weights = np.array([p.bandwidth_time_s(1.0) for p in phases])
            others.append([((o, name, j), w) for j, w in enumerate(weights / weights.sum())])
        total = base = 0.0
        for k, phase in enumerate(own):
            mine: Part = (entity, algorithm, k)
            spb = sum(
                float(np.prod([w for _, w in combo]))
                * self.together((mine, *((o, algorithm, k) for o in same), *(p for p, _ in combo)))
                for combo in itertools.product(*others))
            bandwidth = phase.bandwidth_time_s(1.0)
            total += bandwidth * spb / phase.seconds_per_byte if phase.seconds_per_byte else 0.0
            base += bandwidth
        self._slowdown[key] = total / base if base > 0 else 1.0
        return self._slowdown[key]


def contention_in(job: Job, contention: Contention) -> tuple[bool, bool]:
    """(whether collectives inside passes meet others, whether the data-parallel
    collectives at the end of the step do): the first makes the fast mode play passes
    segment by segment, either makes it run collectives through a :class:`LinkShare`."""
    lay, zero = job.layout, job.train.zero_stage if job.layout.dp > 1 else 0
    passes = contention.stages_meet("tp")
    if not passes and zero >= 2:  # ZeRO's data-parallel stream runs during the passes
        passes = (lay.tp > 1 and any(contention.meets(("tp", s), ("dp", s))
                                     for s in range(lay.pp))) or (
            zero == 2 and contention.stages_meet("dp"))
    ends = zero == 1 and contention.stages_meet("dp")
    return passes, ends


@dataclass
class _Live:
    entity: Entity
    algorithm: str
    size_s: float  # bandwidth seconds at the entity's own (uncontended) rate
    done: simpy.Event
    rate: float = 1.0
    remaining_s: float = 0.0

    def __post_init__(self) -> None:
        self.remaining_s = self.size_s


class LinkShare:
    """The fast mode's collectives as a fluid over the entities they meet (see the module
    docstring). One collective per entity is live at a time (a stage runs one tensor
    collective and one data-parallel stream)."""

    def __init__(self, env: simpy.Environment, contention: Contention):
        self.env, self.contention = env, contention
        self.live: list[_Live] = []
        self._last = 0.0
        self._generation = 0

    def run(self, kind: GroupKind, stage: int, nbytes: float, op: Collective
            ) -> Generator[simpy.Event, Any, None]:
        """A simpy process body: ``op`` of ``nbytes`` over ``stage``'s ``kind`` groups."""
        plan = self.contention.comm.plan(kind, stage)
        name = plan.best(nbytes, op)
        phases = plan.phases(name)
        yield self.env.timeout(sum(p.latency_time_s(op) for p in phases))
        work = sum(p.bandwidth_time_s(nbytes, op) for p in phases)
        if work <= 0:
            return
        self._advance()
        live = _Live((kind, stage), name, work, self.env.event())
        self.live.append(live)
        self._reschedule()
        yield live.done

    def _advance(self) -> None:
        dt = self.env.now - self._last
        for c in self.live:
            c.remaining_s -= c.rate * dt
        self._last = self.env.now

    def _reschedule(self) -> None:
        meets = self.contention.meets
        for c in self.live:
            met = frozenset(o.entity for o in self.live if meets(c.entity, o.entity))
            c.rate = 1.0 / self.contention.slowdown(c.entity, c.algorithm, met) if met else 1.0
        self._generation += 1
        if self.live:
            gen = self._generation
            dt = min(max(c.remaining_s, 0.0) / c.rate for c in self.live)
            self.env.timeout(dt).callbacks.append(lambda _e: self._complete(gen))

    def _complete(self, generation: int) -> None:
        if generation != self._generation:
            return  # superseded by a later start or end
        self._advance()
        for c in [c for c in self.live if c.remaining_s <= 1e-9 * c.size_s]:
            self.live.remove(c)
            c.done.succeed()
        self._reschedule()
