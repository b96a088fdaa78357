"""Collective algorithms as pure cost formulas (seconds from bytes, ranks, bandwidth, latency).

Sources:
- Thakur, Rabenseifner and Gropp, "Optimization of Collective Communication Operations in
  MPICH", IJHPCA 2005: ring reduce-scatter and all-gather take n - 1 steps of nbytes / n each;
  a ring all-reduce is one then the other, 2 (n - 1) steps, moving 2 (n - 1) / n of the
  message per rank. Alpha-beta model: a step costs latency + bytes / bandwidth.
- Patarasuk and Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
  workstations", JPDC 2009: the pipelined ring is bandwidth-optimal.
- Per-dimension (multi-dimensional) torus all-reduce: reduce-scatter along each torus
  dimension in turn on the shrinking share, then all-gather back (Jain and Sabharwal,
  "Optimal bucket algorithms for large MPI collectives on torus interconnects", ICS 2010);
  the same decomposition over (node switch, fabric) is the hierarchical all-reduce of
  NCCL/Horovod. Its bytes per rank telescope to the ring's, 2 (1 - 1/N) of the message,
  in sum_k 2 (n_k - 1) steps instead of 2 (N - 1).
- A ring may run both ways at once (two counter-rotating rings, half the message each),
  which is how full-duplex torus links are used by Fujitsu MPI's and NCCL's rings.
- Reduce-scatter and all-gather are the two halves of the ring (and of the per-dimension)
  all-reduce: each takes half its steps and moves half its bytes, (n - 1) / n of the message
  per rank (Thakur et al. 2005). Megatron-LM's sequence parallelism replaces each tensor
  all-reduce by one of each (Korthikanti et al., "Reducing Activation Recomputation in Large
  Transformer Models", 2022, section 4.2.2: "the communication bandwidth used ... are the
  same"); ZeRO reduce-scatters gradients and all-gathers weights (Rajbhandari et al. 2020).
  ``nbytes`` of a reduce-scatter or all-gather is always the whole (unsharded) message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: the collectives a plan prices
Collective = Literal["allreduce", "reduce_scatter", "all_gather"]


def ring_allreduce_steps(ranks: int) -> int:
    """Steps of a ring all-reduce: n - 1 of reduce-scatter, then n - 1 of all-gather."""
    return 2 * (ranks - 1)


def ring_collective_steps(op: Collective, ranks: int) -> int:
    """Steps of a ring ``op``: 2 (n - 1) for an all-reduce, n - 1 for either half.

    >>> ring_collective_steps("allreduce", 4), ring_collective_steps("all_gather", 4)
    (6, 3)
    """
    return ring_allreduce_steps(ranks) if op == "allreduce" else ranks - 1


def ring_collective_volume(op: Collective, ranks: int) -> float:
    """Fraction of the (whole) message each rank sends in a ring ``op``: 2 (n - 1) / n for
    an all-reduce, (n - 1) / n for a reduce-scatter or an all-gather (Thakur et al. 2005)."""
    return ring_collective_steps(op, ranks) / ranks


def ring_allreduce_volume(ranks: int) -> float:
    """Fraction of the message each rank sends (and receives) in a ring all-reduce,
    2 (n - 1) / n: 2 (n - 1) steps of 1 / n of the message (Thakur et al. 2005).

    >>> ring_allreduce_volume(4)
    1.5
    """
    return ring_allreduce_steps(ranks) / ranks


def p2p_time_s(nbytes: float, bw_Bps: float, latency_s: float) -> float:
    """One point-to-point message: latency + nbytes / bandwidth."""
    return latency_s + nbytes / bw_Bps if nbytes > 0 else 0.0


def ring_reduce_scatter_time_s(nbytes: float, ranks: int, bw_Bps: float, latency_s: float) -> float:
    """Ring reduce-scatter (or all-gather): n - 1 steps of nbytes / n (Thakur et al. 2005)."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return (ranks - 1) * (latency_s + nbytes / ranks / bw_Bps)


def ring_allreduce_time_s(nbytes: float, ranks: int, bw_Bps: float, latency_s: float) -> float:
    """Ring all-reduce: 2 (n - 1) steps of nbytes / n (Thakur et al. 2005).

    >>> round(ring_allreduce_time_s(4e9, 4, 1e9, 0.0), 6)
    6.0
    """
    return 2.0 * ring_reduce_scatter_time_s(nbytes, ranks, bw_Bps, latency_s)


def torus_allreduce_time_s(
    nbytes: float, dims: list[int], bw_Bps: list[float], latency_s: list[float]
) -> float:
    """Per-dimension all-reduce over a grid of ``dims`` rings (Jain and Sabharwal 2010):
    phase k all-reduces the share nbytes / (n_0 ... n_{k-1}) around rings of n_k ranks."""
    total, share = 0.0, float(nbytes)
    for n, bw, lat in zip(dims, bw_Bps, latency_s):
        total += ring_allreduce_time_s(share, n, bw, lat)
        share /= n
    return total


@dataclass(frozen=True)
class RingPhase:
    """One ring stage of a collective, with contention already priced in.

    ``share`` of the message enters the phase; ``seconds_per_byte`` is what one flow (one
    direction of one ring edge) sees when every concurrent flow of the phase runs;
    ``directions`` is 2 for counter-rotating rings; ``latency_s`` is one step's latency.
    """

    ranks: int
    share: float
    seconds_per_byte: float
    latency_s: float
    directions: int = 2

    def allreduce_time_s(self, nbytes: float) -> float:
        return self.time_s(nbytes, "allreduce")

    def time_s(self, nbytes: float, op: Collective = "allreduce") -> float:
        """Seconds of ``op`` on ``nbytes`` (the whole message): a ring reduce-scatter of
        nbytes x share / directions per flow, twice that for an all-reduce (so a
        reduce-scatter and an all-gather cost an all-reduce exactly); the sum of
        :meth:`latency_time_s` and :meth:`bandwidth_time_s`."""
        if self.ranks <= 1 or nbytes <= 0:
            return 0.0
        per_flow = nbytes * self.share / self.directions
        half = ring_reduce_scatter_time_s(
            per_flow, self.ranks, 1.0 / self.seconds_per_byte, self.latency_s)
        return 2.0 * half if op == "allreduce" else half

    def latency_time_s(self, op: Collective = "allreduce") -> float:
        """Latency term of ``op``: one step latency per ring step."""
        return ring_collective_steps(op, self.ranks) * self.latency_s if self.ranks > 1 else 0.0

    def bandwidth_time_s(self, nbytes: float, op: Collective = "allreduce") -> float:
        """Bandwidth term of ``op`` on ``nbytes``: what contention scales."""
        if self.ranks <= 1 or nbytes <= 0:
            return 0.0
        per_flow = nbytes * self.share / self.directions
        return ring_collective_volume(op, self.ranks) * per_flow * self.seconds_per_byte


@dataclass(frozen=True)
class CollectivePlan:
    """Candidate algorithms (each a sequence of ring phases); the fastest one is used, as an
    MPI library picks its algorithm by message size. A reduce-scatter or all-gather runs the
    same phases, half the steps of each (the halves of the all-reduce)."""

    algorithms: tuple[tuple[RingPhase, ...], ...]
    names: tuple[str, ...]

    def time_s(self, nbytes: float, op: Collective = "allreduce") -> float:
        return min(self.timed(nbytes, op).values()) if self.algorithms else 0.0

    def timed(self, nbytes: float, op: Collective = "allreduce") -> dict[str, float]:
        return {
            name: sum(p.time_s(nbytes, op) for p in phases)
            for name, phases in zip(self.names, self.algorithms)
        }

    def best(self, nbytes: float, op: Collective = "allreduce") -> str:
        timed = self.timed(nbytes, op)
        return min(timed, key=lambda k: timed[k]) if timed else "none"

    def phases(self, name: str) -> tuple[RingPhase, ...]:
        """The ring phases of algorithm ``name`` (none if the plan has no such algorithm)."""
        return dict(zip(self.names, self.algorithms)).get(name, ())


@dataclass(frozen=True)
class P2PPlan:
    """Concurrent point-to-point transfers (one per tensor rank of each pipeline replica)."""

    seconds_per_byte: float
    latency_s: float

    def time_s(self, nbytes: float) -> float:
        return p2p_time_s(nbytes, 1.0 / self.seconds_per_byte, self.latency_s) if nbytes else 0.0
