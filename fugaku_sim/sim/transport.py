"""Transport: how the pipeline engine's communication calls turn into simulated time.

:class:`Transport` is what the engine asks of one. :class:`AnalyticTransport` (fast mode) answers each call with a timeout whose length comes
from the priced collective plans of :class:`~fugaku_sim.sim.comm.CommModel` (all concurrent
groups of a stage contending, see there). :class:`NetworkTransport` (detailed mode) sends the
same algorithm's flows, group by group, over a :class:`~fugaku_sim.sim.network.FlowNetwork`
in which every link is shared by whatever is live at that moment.

Messages per call (bytes):
- tensor all-reduce: the payload the compute model gives (a micro-batch's hidden states);
- pipeline send: the hidden states [B, T, C] from each tensor rank to its peer on the next
  (forward) or previous (backward) stage, whole, without Megatron's scatter/gather
  optimisation (DeepSpeed's pipeline engine, which Fugaku-LLM used, sends whole tensors);
- gradient sync: each rank's gradients over its data-parallel group, then, with tied
  embeddings and pp > 1, the embedding gradient between the first and last stage
  (Megatron-LM ``_allreduce_embedding_grads``).

The job's software stack prices every message at its collective efficiency by kind
(:func:`stack_bytes`); the ideal stack at the network model's bandwidth.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

import numpy as np
import simpy

from fugaku_sim.parallel.placement import Placement
from fugaku_sim.sim.collectives import ring_allreduce_steps, ring_allreduce_volume
from fugaku_sim.sim.comm import CommModel, RingSet, ring_algorithms
from fugaku_sim.sim.network import FlowNetwork
from fugaku_sim.sim.topology import Torus
from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import stage_parameters, tied_copy_parameters

Proc = Generator[simpy.Event, Any, None]


class Transport(Protocol):
    """The communication calls of :class:`~fugaku_sim.sim.engine.PipelineEngine` (seconds).

    Each call returning :data:`Proc` is a simpy process body: it returns when the
    communication it stands for has ended for the caller. ``replica`` is the caller's
    pipeline replica (data-parallel index), ``stage`` its pipeline stage.
    """

    env: simpy.Environment
    # True: tensor all-reduces are priced by tp_time_s and folded into a pass's single
    # timeout (no contention between them); False: each is simulated by tp_allreduce.
    analytic: bool

    def tp_time_s(self, stage: int, nbytes: float) -> float:
        """Seconds of one tensor-parallel all-reduce of ``nbytes`` on ``stage``."""
        ...

    def tp_allreduce(self, replica: int, stage: int, nbytes: float) -> Proc:
        """One tensor-parallel all-reduce of ``nbytes`` per rank."""
        ...

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        """The activation (or its gradient) from stage ``src`` to stage ``dst``."""
        ...

    def grad_sync(self, replica: int, stage: int) -> Proc:
        """The data-parallel gradient all-reduce of ``stage``."""
        ...

    def embedding_sync(self, replica: int, stage: int) -> Proc:
        """The tied-embedding gradient all-reduce between the first and last stage."""
        ...


def stack_bytes(job: Job, kind: str, nbytes: float) -> float:
    """The bytes a collective of ``kind`` (allreduce, p2p, allgather) costs on the job's
    software stack: at efficiency e it moves ``nbytes`` at e x the priced bandwidth, which
    is what ``nbytes / e`` cost at the full bandwidth (latencies unchanged)."""
    return nbytes / getattr(job.stack.collective_efficiency, kind)


def grad_bytes(job: Job, stage: int) -> float:
    """Gradient bytes one rank of ``stage`` all-reduces (fp32 or 16-bit gradients): every
    tensor it holds (:func:`fugaku_sim.tensors.stage_parameters`)."""
    params = stage_parameters(job.model, job.layout, stage)
    return float(params * element_bytes(job.train.precision))


def embedding_grad_bytes(job: Job) -> float:
    """Bytes of the tied word-embedding shard kept on both the first and last stage (0 when
    the last stage keeps no tied copy)."""
    params = tied_copy_parameters(job.model, job.layout)
    return float(params * element_bytes(job.train.precision))


class AnalyticTransport:
    """Fast mode: every call is a timeout from the priced plans (one pipeline replica)."""

    analytic = True

    def __init__(self, env: simpy.Environment, job: Job, comm: CommModel):
        self.env, self.job, self.comm = env, job, comm
        self._embedding: simpy.Event | None = None

    def tp_time_s(self, stage: int, nbytes: float) -> float:
        return self.comm.tp_plan(stage).time_s(stack_bytes(self.job, "allreduce", nbytes))

    def p2p_time_s(self, src: int, dst: int, nbytes: float) -> float:
        return self.comm.p2p_plan(src, dst).time_s(stack_bytes(self.job, "p2p", nbytes))

    def grad_sync_time_s(self, stage: int) -> float:
        nbytes = stack_bytes(self.job, "allreduce", grad_bytes(self.job, stage))
        return self.comm.dp_plan(stage).time_s(nbytes)

    def embedding_time_s(self) -> float:
        nbytes = stack_bytes(self.job, "allreduce", embedding_grad_bytes(self.job))
        return self.comm.embedding_plan().time_s(nbytes)

    def tp_allreduce(self, replica: int, stage: int, nbytes: float) -> Proc:
        yield self.env.timeout(self.tp_time_s(stage, nbytes))

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        yield self.env.timeout(self.p2p_time_s(src, dst, nbytes))

    def grad_sync(self, replica: int, stage: int) -> Proc:
        yield self.env.timeout(self.grad_sync_time_s(stage))

    def embedding_sync(self, replica: int, stage: int) -> Proc:
        """Waits for the other end (first or last stage), then the all-reduce."""
        if self._embedding is None:
            self._embedding = self.env.event()
            yield self._embedding
        else:
            yield self.env.timeout(0)
            self._embedding.succeed()
        yield self.env.timeout(self.embedding_time_s())


class NetworkTransport:
    """Detailed mode: every rank's flows on a shared :class:`FlowNetwork`."""

    analytic = False

    def __init__(self, env: simpy.Environment, job: Job, comm: CommModel):
        self.env, self.job, self.comm = env, job, comm
        self.placement: Placement = comm.placement
        self.net = comm.network
        self.flows = FlowNetwork(env, self.net.capacities())
        self._routes: dict[tuple[int, int], list[int]] = {}
        self._rendezvous: dict[tuple[str, int], tuple[int, simpy.Event]] = {}

    def tp_time_s(self, stage: int, nbytes: float) -> float:
        """The priced plan's seconds (what fast mode charges); this transport simulates the
        all-reduce instead (:meth:`tp_allreduce`)."""
        return self.comm.tp_plan(stage).time_s(stack_bytes(self.job, "allreduce", nbytes))

    def _route(self, src: int, dst: int) -> list[int]:
        key = (src, dst)
        if key not in self._routes:
            p = self.placement
            self._routes[key] = self.net.route(
                int(p.node[src]), int(p.slot[src]), int(p.node[dst]), int(p.slot[dst])
            )
        return self._routes[key]

    def _cap(self, src: int, dst: int) -> float:
        inter = self.placement.node[src] != self.placement.node[dst]
        return self.net.flow_cap_Bps if isinstance(self.net, Torus) and inter else float("inf")

    def _send(self, src: int, dst: int, nbytes: float) -> simpy.Event:
        return self.flows.transfer(self._route(src, dst), nbytes, self._cap(src, dst))

    def _ring_phases(self, members: np.ndarray, algorithm: str) -> list[RingSet]:
        return ring_algorithms(members, self.placement).get(algorithm, [])

    def _allreduce(self, members: np.ndarray, algorithm: str, nbytes: float) -> Proc:
        """The chosen algorithm's phases; each phase's latency, then its flows at once."""
        for rs in self._ring_phases(members, algorithm):
            n = rs.rings.shape[1]
            # two counter-rotating rings, half the message each
            per_flow = ring_allreduce_volume(n) * nbytes * rs.share / 2
            src = rs.rings.reshape(-1)
            dst = np.roll(rs.rings, -1, axis=1).reshape(-1)
            pairs = list(zip(src.tolist(), dst.tolist())) + list(zip(dst.tolist(), src.tolist()))
            latency = self.net.step_latency_s(_flows(self.placement, pairs))
            yield self.env.timeout(ring_allreduce_steps(n) * latency)
            yield self.env.all_of([self._send(a, b, per_flow) for a, b in pairs])

    def tp_allreduce(self, replica: int, stage: int, nbytes: float) -> Proc:
        members = self.comm.tp_groups(stage)[replica : replica + 1]
        nbytes = stack_bytes(self.job, "allreduce", nbytes)
        yield from self._allreduce(members, self.comm.tp_plan(stage).best(nbytes), nbytes)

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        a = self.comm.ranks[:, src, replica].tolist()
        b = self.comm.ranks[:, dst, replica].tolist()
        latency = self.net.step_latency_s(_flows(self.placement, list(zip(a, b))))
        nbytes = stack_bytes(self.job, "p2p", nbytes)
        yield self.env.timeout(latency)
        yield self.env.all_of([self._send(x, y, nbytes) for x, y in zip(a, b)])

    def _meet(self, key: tuple[str, int], expected: int) -> tuple[bool, simpy.Event]:
        """Rendezvous of ``expected`` callers: (am I the last to arrive, all-arrived event)."""
        count, event = self._rendezvous.get(key, (0, self.env.event()))
        count += 1
        self._rendezvous[key] = (count, event)
        return count == expected, event

    def grad_sync(self, replica: int, stage: int) -> Proc:
        """All data-parallel groups of ``stage`` at once, when every replica has arrived."""
        last, done = self._meet(("dp", stage), self.job.layout.dp)
        if last:
            nbytes = stack_bytes(self.job, "allreduce", grad_bytes(self.job, stage))
            members = self.comm.dp_groups(stage)
            self.env.process(
                self._all_groups(members, self.comm.dp_plan(stage).best(nbytes), nbytes, done)
            )
        yield done

    def embedding_sync(self, replica: int, stage: int) -> Proc:
        """The tied-embedding all-reduce between first and last stage, once both are ready."""
        last, done = self._meet(("emb", 0), 2 * self.job.layout.dp)
        if last:
            nbytes = stack_bytes(self.job, "allreduce", embedding_grad_bytes(self.job))
            pairs = self.comm.embedding_groups()
            self.env.process(
                self._all_groups(pairs, self.comm.embedding_plan().best(nbytes), nbytes, done)
            )
        yield done

    def _all_groups(
        self, members: np.ndarray, algorithm: str, nbytes: float, done: simpy.Event
    ) -> Proc:
        procs = [
            self.env.process(self._allreduce(members[g : g + 1], algorithm, nbytes))
            for g in range(members.shape[0])
        ]
        yield self.env.all_of(procs)
        done.succeed()


def _flows(placement: Placement, pairs: list[tuple[int, int]]) -> Any:
    from fugaku_sim.sim.comm import pair_flows

    src = np.array([a for a, _ in pairs], dtype=np.int64)
    dst = np.array([b for _, b in pairs], dtype=np.int64)
    return pair_flows(src, dst, placement)
