"""Transport: how the pipeline engine's communication calls turn into simulated time.

:class:`Transport` is what the engine asks of one. :class:`AnalyticTransport` (fast mode)
answers each call with a timeout whose length comes from the priced collective plans of
:class:`~fugaku_sim.sim.comm.CommModel` (all concurrent groups of a stage contending, see
there) -- except where collectives that run at once meet on a link, where
:class:`~fugaku_sim.sim.contention.LinkShare` runs them as a fluid. :class:`NetworkTransport`
(detailed mode) sends the same algorithm's flows, group by group, over a
:class:`~fugaku_sim.sim.network.FlowNetwork` in which every link is shared by whatever is
live at that moment.

Messages per call (bytes; a reduce-scatter's or all-gather's is the whole, unsharded message):
- tensor collective: the payload the segments give (a micro-batch's hidden states);
- pipeline send: the hidden states from each tensor rank to its peer on the next (forward)
  or previous (backward) stage (:func:`fugaku_sim.sim.segments.p2p_message_bytes`);
- data-parallel collective: ZeRO's gradient reduce-scatters and weight all-gathers;
- gradient sync: each rank's gradients over its data-parallel group, then, with tied
  embeddings and pp > 1, the embedding gradient between the first and last stage
  (Megatron-LM ``_allreduce_embedding_grads``); with fewer key/value heads than tensor ranks,
  first the gradients of the key/value copies over the tensor group
  (:func:`kv_copy_grad_bytes`). An untied head has no copy: nothing passes between the first
  and last stage.

The job's software stack prices every message at its collective efficiency by kind
(:func:`stack_bytes`: all-reduces, pipeline sends, and ZeRO's and sequence parallelism's
reduce-scatters and all-gathers); the ideal stack at the network model's bandwidth.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal, Protocol

import numpy as np
import simpy

from fugaku_sim.parallel.placement import Placement
from fugaku_sim.sim.collectives import Collective, ring_collective_steps, ring_collective_volume
from fugaku_sim.sim.comm import CommModel, RingSet, ring_algorithms
from fugaku_sim.sim.compute import local_heads
from fugaku_sim.sim.contention import Contention, LinkShare, contention_in
from fugaku_sim.sim.network import FlowNetwork
from fugaku_sim.sim.topology import Torus
from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import (
    held_tensors,
    layout_chunks,
    stage_parameters,
    tensor_table,
    tied_copy_parameters,
)

Proc = Generator[simpy.Event, Any, None]


class Transport(Protocol):
    """The communication calls of :class:`~fugaku_sim.sim.engine.PipelineEngine` (seconds).

    Each call returning :data:`Proc` is a simpy process body: it returns when the
    communication it stands for has ended for the caller. ``replica`` is the caller's
    pipeline replica (data-parallel index), ``stage`` its pipeline stage.
    """

    env: simpy.Environment
    # True: collectives of a pass are priced by tp_time_s / dp_time_s and the pass is
    # folded into a single timeout; False: each is simulated by tp_collective / dp_collective.
    analytic: bool

    def tp_time_s(self, stage: int, nbytes: float, op: Collective = "allreduce") -> float:
        """Seconds of one tensor-parallel ``op`` of ``nbytes`` on ``stage``."""
        ...

    def dp_time_s(self, stage: int, nbytes: float, op: Collective) -> float:
        """Seconds of one data-parallel ``op`` of ``nbytes`` on ``stage``."""
        ...

    def tp_collective(self, replica: int, stage: int, nbytes: float, op: Collective) -> Proc:
        """One tensor-parallel ``op`` of ``nbytes`` per rank."""
        ...

    def dp_collective(self, replica: int, stage: int, nbytes: float, op: Collective,
                      key: tuple[object, ...]) -> Proc:
        """One data-parallel ``op`` of ``nbytes`` per rank; ``key`` names the call, the same
        on every replica."""
        ...

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        """The activation (or its gradient) from stage ``src`` to stage ``dst``."""
        ...

    def grad_sync(self, replica: int, stage: int, op: Collective = "allreduce") -> Proc:
        """The data-parallel gradient collective of ``stage`` after the backward."""
        ...

    def embedding_sync(self, replica: int, stage: int) -> Proc:
        """The tied-embedding gradient all-reduce between the first and last stage."""
        ...


#: the stack's efficiency field that prices each kind of message
STACK_EFFICIENCY = {"allreduce": "allreduce", "reduce_scatter": "allgather",
                    "all_gather": "allgather", "p2p": "p2p"}


def stack_bytes(job: Job, kind: Collective | Literal["p2p"], nbytes: float) -> float:
    """The bytes a message of ``kind`` costs on the job's software stack: at efficiency e it
    moves ``nbytes`` at e x the priced bandwidth, which is what ``nbytes / e`` cost at the full
    bandwidth (latencies unchanged). Every transport call prices its message through this."""
    return nbytes / getattr(job.stack.collective_efficiency, STACK_EFFICIENCY[kind])


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


def kv_copy_grad_bytes(job: Job, stage: int) -> float:
    """Gradient bytes of the key/value projections one rank of ``stage`` holds as copies.

    With fewer key/value heads than tensor ranks each head is copied to t / kv_heads ranks
    (:mod:`fugaku_sim.tensors.split`), and each copy's gradient holds only the share of its
    own rank's query heads, so the copies' gradients are summed over the tensor ranks once a
    step, as the tied embedding's are over its two stages. Priced as an all-reduce over the
    whole tensor group (the ranks sharing a head are t / kv_heads of them: an upper bound).
    0 when the key/value heads split over the ranks.
    """
    m, t = job.model, job.layout.tp
    if m.kv >= t:
        return 0.0
    q_heads, kv_heads = local_heads(job)
    params = 0
    for row in held_tensors(tensor_table(m), layout_chunks(m, job.layout, stage)):
        if row.role in ("k", "v", "k_bias", "v_bias"):
            params += row.local_size(t)
        elif row.role in ("qkv", "qkv_bias"):  # the key and value columns of the fused one
            params += row.local_size(t) * 2 * kv_heads // (q_heads + 2 * kv_heads)
    return float(params * element_bytes(job.train.precision))


class AnalyticTransport:
    """Fast mode: every call is a timeout from the priced plans (one pipeline replica), or,
    where collectives meet, a share of the links (:mod:`fugaku_sim.sim.contention`)."""

    def __init__(self, env: simpy.Environment, job: Job, comm: CommModel,
                 contention: Contention | None = None):
        self.env, self.job, self.comm = env, job, comm
        self._embedding: simpy.Event | None = None
        self._p2p: dict[tuple[int, int, float], float] = {}
        contention = contention or Contention(comm)  # shared by jobs of one placement
        passes, ends = contention_in(job, contention)
        self.share = LinkShare(env, contention) if passes or ends else None
        # a pass is one timeout unless its collectives meet others (the gradient sync after
        # the backward is a process of its own either way)
        self.analytic = not passes

    def tp_time_s(self, stage: int, nbytes: float, op: Collective = "allreduce") -> float:
        return self.comm.tp_plan(stage).time_s(stack_bytes(self.job, op, nbytes), op)

    def dp_time_s(self, stage: int, nbytes: float, op: Collective) -> float:
        return self.comm.dp_plan(stage).time_s(stack_bytes(self.job, op, nbytes), op)

    def p2p_time_s(self, src: int, dst: int, nbytes: float) -> float:
        """Seconds of a pipeline message (priced once per pair and size: every micro-batch
        sends the same)."""
        key = (src, dst, nbytes)
        seconds = self._p2p.get(key)
        if seconds is None:
            seconds = self.comm.p2p_plan(src, dst).time_s(stack_bytes(self.job, "p2p", nbytes))
            self._p2p[key] = seconds
        return seconds

    def grad_sync_time_s(self, stage: int, op: Collective = "allreduce") -> float:
        return self.dp_time_s(stage, grad_bytes(self.job, stage), op)

    def embedding_time_s(self) -> float:
        nbytes = stack_bytes(self.job, "allreduce", embedding_grad_bytes(self.job))
        return self.comm.embedding_plan().time_s(nbytes)

    def tp_collective(self, replica: int, stage: int, nbytes: float, op: Collective) -> Proc:
        if self.share is not None:
            yield from self.share.run("tp", stage, stack_bytes(self.job, op, nbytes), op)
        else:
            yield self.env.timeout(self.tp_time_s(stage, nbytes, op))

    def dp_collective(self, replica: int, stage: int, nbytes: float, op: Collective,
                      key: tuple[object, ...]) -> Proc:
        if self.share is not None:
            yield from self.share.run("dp", stage, stack_bytes(self.job, op, nbytes), op)
        else:
            yield self.env.timeout(self.dp_time_s(stage, nbytes, op))

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        yield self.env.timeout(self.p2p_time_s(src, dst, nbytes))

    def grad_sync(self, replica: int, stage: int, op: Collective = "allreduce") -> Proc:
        yield from self.dp_collective(replica, stage, grad_bytes(self.job, stage), op, ("grad",))

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
        self._rendezvous: dict[tuple[object, ...], tuple[int, simpy.Event]] = {}

    def tp_time_s(self, stage: int, nbytes: float, op: Collective = "allreduce") -> float:
        """The priced plan's seconds (what fast mode charges); this transport simulates the
        collective instead (:meth:`tp_collective`)."""
        return self.comm.tp_plan(stage).time_s(stack_bytes(self.job, op, nbytes), op)

    def dp_time_s(self, stage: int, nbytes: float, op: Collective) -> float:
        return self.comm.dp_plan(stage).time_s(stack_bytes(self.job, op, nbytes), op)

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

    def _collective(self, members: np.ndarray, algorithm: str, nbytes: float,
                    op: Collective = "allreduce") -> Proc:
        """The chosen algorithm's phases; each phase's latency, then its flows at once."""
        for rs in self._ring_phases(members, algorithm):
            n = rs.rings.shape[1]
            # two counter-rotating rings, half the message each
            per_flow = ring_collective_volume(op, n) * nbytes * rs.share / 2
            src = rs.rings.reshape(-1)
            dst = np.roll(rs.rings, -1, axis=1).reshape(-1)
            pairs = list(zip(src.tolist(), dst.tolist())) + list(zip(dst.tolist(), src.tolist()))
            latency = self.net.step_latency_s(_flows(self.placement, pairs))
            yield self.env.timeout(ring_collective_steps(op, n) * latency)
            yield self.env.all_of([self._send(a, b, per_flow) for a, b in pairs])

    def tp_collective(self, replica: int, stage: int, nbytes: float, op: Collective) -> Proc:
        members = self.comm.tp_groups(stage)[replica : replica + 1]
        nbytes = stack_bytes(self.job, op, nbytes)
        yield from self._collective(members, self.comm.tp_plan(stage).best(nbytes, op), nbytes,
                                    op)

    def dp_collective(self, replica: int, stage: int, nbytes: float, op: Collective,
                      key: tuple[object, ...]) -> Proc:
        """All data-parallel groups of ``stage`` at once, when every replica has called."""
        last, done = self._meet(("dpc", stage, *key), self.job.layout.dp)
        if last:
            nbytes = stack_bytes(self.job, op, nbytes)
            members = self.comm.dp_groups(stage)
            algorithm = self.comm.dp_plan(stage).best(nbytes, op)
            self.env.process(self._all_groups(members, algorithm, nbytes, done, op))
        yield done

    def p2p(self, replica: int, src: int, dst: int, nbytes: float) -> Proc:
        a = self.comm.ranks[:, src, replica].tolist()
        b = self.comm.ranks[:, dst, replica].tolist()
        latency = self.net.step_latency_s(_flows(self.placement, list(zip(a, b))))
        nbytes = stack_bytes(self.job, "p2p", nbytes)
        yield self.env.timeout(latency)
        yield self.env.all_of([self._send(x, y, nbytes) for x, y in zip(a, b)])

    def _meet(self, key: tuple[object, ...], expected: int) -> tuple[bool, simpy.Event]:
        """Rendezvous of ``expected`` callers: (am I the last to arrive, all-arrived event)."""
        count, event = self._rendezvous.get(key, (0, self.env.event()))
        count += 1
        self._rendezvous[key] = (count, event)
        return count == expected, event

    def grad_sync(self, replica: int, stage: int, op: Collective = "allreduce") -> Proc:
        """All data-parallel groups of ``stage`` at once, when every replica has arrived."""
        last, done = self._meet(("dp", stage), self.job.layout.dp)
        if last:
            nbytes = stack_bytes(self.job, op, grad_bytes(self.job, stage))
            members = self.comm.dp_groups(stage)
            algorithm = self.comm.dp_plan(stage).best(nbytes, op)
            self.env.process(self._all_groups(members, algorithm, nbytes, done, op))
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
        self, members: np.ndarray, algorithm: str, nbytes: float, done: simpy.Event,
        op: Collective = "allreduce",
    ) -> Proc:
        procs = [
            self.env.process(self._collective(members[g : g + 1], algorithm, nbytes, op))
            for g in range(members.shape[0])
        ]
        yield self.env.all_of(procs)
        done.succeed()


def _flows(placement: Placement, pairs: list[tuple[int, int]]) -> Any:
    from fugaku_sim.sim.comm import pair_flows

    src = np.array([a for a, _ in pairs], dtype=np.int64)
    dst = np.array([b for _, b in pairs], dtype=np.int64)
    return pair_flows(src, dst, placement)
