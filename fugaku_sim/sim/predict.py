"""Predict one training step of a job, and what the whole run costs.

``predict(job, mode="fast"|"detailed") -> Prediction``; ``Prediction.to_json()`` gives the
fields ``fugaku-sim predict --json`` prints.

Modes: ``fast`` simulates one representative pipeline (every data-parallel replica runs the
same timeline) with collectives priced on their actual placed groups, all groups of a stage
contending (:mod:`fugaku_sim.sim.comm`). ``detailed`` simulates every replica of every stage
and sends every flow over a max-min fair network of every link (:mod:`fugaku_sim.sim.network`);
it is for small tori and for checking the fast mode.

How the breakdown partitions the step time. The step ends when the last stage replica has
stepped its optimizer; that one is the *critical stage*. Its timeline is cut into:
``compute`` (forward and backward arithmetic), ``recompute`` (forward arithmetic re-run before
backward), ``tp_comm`` (tensor all-reduces, those of recomputation and the sum of copied
key/value heads' gradients included), ``pp_comm``
(its blocking sends to pipeline neighbours), ``dp_comm`` (gradient all-reduce and tied
embedding all-reduce not hidden behind backward; ZeRO's gradient reduce-scatters and weight
all-gathers where the compute waits for them), ``optimizer``; and ``bubble``, the rest: the
time it sat waiting for a neighbour's activation or gradient. The seven terms sum to
``step_time_s`` exactly. Selective recomputation's re-run attention core is ``recompute``;
tensor collectives overlapped with compute (sequence parallelism's backward) count only
where the compute waits for them.

Throughput figures: model FLOPs per token are 3 x forward FLOPs without recomputation
(:func:`fugaku_sim.sim.flops.model_flops_per_token`); MFU is model FLOP/s over the job's peak
at the training precision (Chowdhery et al., "PaLM", 2022, appendix B). ``hw_tflops_per_node``
also counts recomputed FLOPs (the figure Narayanan et al., SC21, report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import simpy

from fugaku_sim.parallel.placement import Placement, place_ranks
from fugaku_sim.sim.allocation import JobAllocation, allocation_network, resolve_allocation
from fugaku_sim.sim.comm import CommModel
from fugaku_sim.sim.contention import Contention
from fugaku_sim.sim.engine import (
    CATEGORIES,
    EngineResult,
    PipelineEngine,
    check_simulation_size,
)
from fugaku_sim.sim.flops import (
    attention_core_flops,
    layer_forward_flops,
    model_flops_per_token,
    parameter_count,
)
from fugaku_sim.sim.memory import (
    GiB,
    fits_memory,
    memory_by_stage,
    parameter_bytes,
    peak_memory_per_node,
    peak_stage,
)
from fugaku_sim.sim.reliability import FailurePlan, plan_failures
from fugaku_sim.sim.topology import Network
from fugaku_sim.sim.transport import AnalyticTransport, NetworkTransport, Transport
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS, BUBBLE
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.record import LayoutRecord
from fugaku_sim.spec.stack import stack_identity
from fugaku_sim.tensors import model_parallel_parameters

Mode = Literal["fast", "detailed"]


@dataclass(frozen=True)
class Setup:
    """The placed job: shape, rank placement, network, its priced communication (and which
    collectives meet), and how its nodes were allocated."""

    shape: list[int]
    placement: Placement
    network: Network
    comm: CommModel
    allocation: JobAllocation
    contention: Contention


def prepare(job: Job) -> Setup:
    """Place the job's ranks on its allocation and build its network and communication model."""
    lay = job.layout
    alloc = resolve_allocation(job)
    grid = lay.grid
    placement = place_ranks(grid, alloc.shape, job.processes_per_node, lay.placement)
    network = allocation_network(job.cluster, alloc, job.processes_per_node)
    comm = CommModel(grid, placement, network)
    return Setup(alloc.shape, placement, network, comm, alloc, Contention(comm))


def reprice(setup: Setup, job: Job) -> Setup:
    """``setup`` for ``job``, whose cluster differs from the one ``setup`` was placed on in
    interconnect rates or latencies only: the same allocation, placement and routed flows,
    the network and its plans' prices anew (what :func:`prepare` gives, without routing
    every flow again); a job allocated or routed otherwise is placed anew."""
    alloc = resolve_allocation(job)
    if alloc != setup.allocation:
        return prepare(job)
    network = allocation_network(job.cluster, alloc, job.processes_per_node)
    if network.routes_key != setup.network.routes_key:
        return prepare(job)
    comm = setup.comm.repriced(network)
    return replace(setup, network=network, comm=comm, contention=Contention(comm))


def run_engine(job: Job, setup: Setup, mode: Mode, trace: bool = False) -> EngineResult:
    """Simulate one step; fast mode runs one replica, detailed mode all of them."""
    env = simpy.Environment()
    if mode == "fast":
        transport: Transport = AnalyticTransport(env, job, setup.comm, setup.contention)
        replicas = 1
    elif mode == "detailed":
        transport = NetworkTransport(env, job, setup.comm)
        replicas = job.layout.dp
    else:
        raise ValueError(f"unknown mode {mode!r}")
    check_simulation_size(job, replicas, detailed=mode == "detailed")
    return PipelineEngine(job, transport, replicas=replicas, trace=trace).run()


@dataclass(frozen=True)
class Prediction:
    """A simulated step of ``job`` and the cost of its whole run."""

    job: Job
    mode: str
    shape: list[int]
    result: EngineResult
    failures: FailurePlan | None
    steps: int | None
    allocation: JobAllocation

    @property
    def step_time_s(self) -> float:
        return self.result.step_time_s

    @property
    def critical_stage(self) -> int:
        return self.result.critical[1]

    @property
    def breakdown_s(self) -> dict[str, float]:
        """The critical stage's time by category; ``bubble`` is the rest (sums exactly)."""
        ledger = self.result.ledgers[self.result.critical]
        out = {k: ledger.seconds[k] for k in CATEGORIES}
        out[BUBBLE] = max(0.0, self.step_time_s - sum(out.values()))
        return {k: out[k] for k in BREAKDOWN_KEYS}

    @property
    def model_flops_per_step(self) -> float:
        return model_flops_per_token(self.job.model) * self.job.global_batch_tokens

    @property
    def hardware_flops_per_step(self) -> float:
        """Model FLOPs plus the forward FLOPs recomputed: whole layers on stages with full
        recomputation, the attention core on stages with selective recomputation."""
        job = self.job
        pp, layers, tokens = job.layout.pp, job.model.layers, job.global_batch_tokens
        full = len(job.recompute_stages) / pp * layers * layer_forward_flops(job.model, tokens)
        selective = len(job.train.selective_stage_set(pp)) / pp * layers * attention_core_flops(
            job.model, tokens)
        return self.model_flops_per_step + full + selective

    @property
    def mfu(self) -> float:
        peak = self.job.cluster.node.peak_flops(self.job.train.precision) * self.job.nodes
        return self.model_flops_per_step / self.step_time_s / peak

    @property
    def bubble_fraction(self) -> float:
        return self.breakdown_s[BUBBLE] / self.step_time_s

    @property
    def record(self) -> LayoutRecord:
        """The layout as it was simulated (its job shape, allocation kind and processes per
        node filled in) and the training settings: what ``--layout-from`` reads to run this
        again."""
        job, kind = self.job, self.allocation.kind
        resolved: dict[str, Any] = {
            "job_shape": list(self.shape), "processes_per_node": job.processes_per_node}
        if kind != "switched":  # a fat tree takes any nodes: nothing to ask for
            resolved["allocation"] = kind
        layout = job.layout.model_dump() | resolved
        return LayoutRecord(Layout.model_validate(layout), job.train)

    def to_json(self) -> dict[str, Any]:
        """The contract's flat fields (plus a few more) and the layout record
        (``layout`` and ``train`` objects, :mod:`fugaku_sim.spec.record`), JSON-ready."""
        job, lay, step = self.job, self.job.layout, self.step_time_s
        stages = memory_by_stage(job)
        peak_mem, fullest = peak_memory_per_node(job, stages), peak_stage(stages)
        out: dict[str, Any] = {
            "cluster": job.cluster.name,
            "model": job.model.name,
            "stack": stack_identity(job.stack),
            "mode": self.mode,
            "nodes": job.nodes,
            "tp": lay.tp,
            "pp": lay.pp,
            "dp": lay.dp,
            "micro_batch": job.train.micro_batch,
            "global_batch": job.train.global_batch,
            "grad_accum": job.micro_batches,
            "schedule": lay.schedule,
            "virtual_stages": lay.virtual_stages,
            "placement": lay.placement,
            "rank_order": lay.rank_order,
            "job_shape": "x".join(map(str, self.shape)),
            "allocation": self.allocation.kind,
            "sequence_parallel": lay.sequence_parallel,
            "recompute": job.train.recompute,
            "recompute_stages": sorted(job.recompute_stages),
            "selective_recompute_stages": sorted(job.train.selective_stage_set(lay.pp)),
            "zero_stage": job.train.zero_stage,
            "overlap_grad_reduce": job.train.overlap_grad_reduce,
            "step_time_s": step,
            "tokens_per_s": job.global_batch_tokens / step,
            "tflops_per_node": self.model_flops_per_step / step / job.nodes / 1e12,
            "hw_tflops_per_node": self.hardware_flops_per_step / step / job.nodes / 1e12,
            "mfu": self.mfu,
            "memory_per_node_GiB": peak_mem / GiB,
            # the fullest stage's ranks, by part (MEMORY_KEYS)
            "memory_per_rank_GiB": {**{k: v / GiB for k, v in fullest.parts().items()},
                                    "total": fullest.total / GiB},
            "memory_peak_stage": fullest.stage,
            "fits_memory": fits_memory(job, peak_mem),
            "usable_memory_per_node_GiB": job.cluster.node.usable_mem_bytes / GiB,
            "breakdown_s": self.breakdown_s,
            "critical_stage": self.critical_stage,
            "bubble_fraction": self.bubble_fraction,
            "parameters": parameter_count(job.model),
        }
        out.update(self._run_fields())
        out.update(self.record.to_json())
        return out

    def _run_fields(self) -> dict[str, Any]:
        f, job = self.failures, self.job
        if f is None or self.steps is None:
            return {
                "steps": None,
                "time_to_train_days": None,
                "node_hours": None,
                "energy_MWh": None,
            }
        node_hours = job.nodes * f.wall_s / 3600.0
        return {
            "tokens": job.train.tokens,
            "steps": self.steps,
            "time_to_train_days": f.wall_s / 86400.0,
            "failure_free_days": f.solve_s / 86400.0,
            "node_hours": node_hours,
            "energy_MWh": node_hours * job.cluster.node.power_W / 1e6,
            "checkpoint_interval_s": f.interval_s,
            "checkpoint_write_s": f.checkpoint_s,
            "system_mtbf_h": f.mtbf_s / 3600.0,
            "failure_overhead": f.overhead,
        }


def checkpoint_bytes(job: Job) -> float:
    """Weights and optimizer states the model-parallel ranks of one replica write (what a
    restart needs): every rank's tensors, replicated ones and the tied copy included, as
    Megatron-LM and DeepSpeed save them (:func:`fugaku_sim.tensors.model_parallel_parameters`)."""
    w, _g, o = parameter_bytes(job.train)
    return float(model_parallel_parameters(job.model, job.layout) * (w + o))


def predict(
    job: Job, mode: Mode = "fast", trace: bool = False, setup: Setup | None = None
) -> Prediction:
    """Simulate one step of ``job`` and cost its run (when tokens or steps are set).

    Raises:
        SpecError: the step is too large to simulate (names the field to change).
    """
    check_simulation_size(job, job.layout.dp if mode == "detailed" else 1, mode == "detailed")
    setup = setup or prepare(job)
    result = run_engine(job, setup, mode, trace)
    steps = job.run_steps()
    failures = None
    if steps is not None and math.isfinite(result.step_time_s):
        c = job.cluster
        failures = plan_failures(
            steps * result.step_time_s,
            checkpoint_bytes(job),
            c.checkpoint_write_GBps * 1e9,
            c.mtbf_node_h,
            job.nodes,
        )
    return Prediction(job, mode, setup.shape, result, failures, steps, setup.allocation)
