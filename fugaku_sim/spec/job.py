"""Job: a cluster, a model, training settings, a layout and a software stack, checked against
each other (what + how + where: the hardware and the stack that runs on it).

The single-section rules live on each model; the rules that span sections live here and name
the dotted path of the field to fix (``layout.tp: 5 does not divide model.heads (36)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from fugaku_sim.errors import SpecError
from fugaku_sim.spec.cluster import ClusterSpec, SwitchedInterconnect
from fugaku_sim.spec.figures import micro_batches_per_replica, run_steps, tokens_per_step
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.spec.stack import IDEAL, StackSpec
from fugaku_sim.spec.train import TrainSpec


@dataclass(frozen=True)
class Job:
    """A validated combination; build it with :func:`make_job`."""

    cluster: ClusterSpec
    model: ModelSpec
    train: TrainSpec
    layout: Layout
    stack: StackSpec = IDEAL  # the software: efficiencies and overheads (spec/stack.py)

    @property
    def processes_per_node(self) -> int:
        return self.layout.processes_per_node or self.cluster.node.processes_per_node

    @property
    def nodes(self) -> int:
        return self.layout.world // self.processes_per_node

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per step (gradient-accumulation steps)."""
        return micro_batches_per_replica(self.train, self.layout)

    @property
    def global_batch_tokens(self) -> int:
        return tokens_per_step(self.train, self.model)

    @property
    def recompute_stages(self) -> frozenset[int]:
        return self.train.recompute_stage_set(self.layout.pp)

    def run_steps(self) -> int | None:
        """Optimizer steps of the run (``train.steps``, or enough for ``train.tokens``)."""
        return run_steps(self.train, self.model)


def make_job(cluster: ClusterSpec, model: ModelSpec, train: TrainSpec, layout: Layout,
             stack: StackSpec | None = None) -> Job:
    """Check the cross-section rules and return the :class:`Job` (on ``stack``, the ideal
    one when None).

    Raises:
        SpecError: naming the dotted field path and what is wrong.
    """
    check_model_split(model, layout)
    check_batch(train, layout)
    check_modelled(model, train, layout, "sim")
    job = Job(cluster, model, train, layout, IDEAL if stack is None else stack)
    _check_nodes(job)
    check_allocation(cluster, layout, job.nodes)
    if layout.job_shape is not None:
        check_job_shape(cluster, layout.job_shape, job.nodes)
    return job


#: features of the spec that an engine does not model yet: (what, engines lacking it, test)
_NOT_MODELLED: list[tuple[str, frozenset[str], Callable[[ModelSpec, TrainSpec, Layout], bool]]] = [
    ("train.attention: flash", frozenset({"train"}),
     lambda m, t, lay: t.attention == "flash"),
]


def check_modelled(model: ModelSpec, train: TrainSpec, layout: Layout, engine: str) -> None:
    """Refuse what the spec accepts but ``engine`` (``sim`` or ``train``) does not model yet,
    rather than silently running something else.

    Raises:
        SpecError: naming the field.
    """
    for what, lacking, used in _NOT_MODELLED:
        if engine in lacking and used(model, train, layout):
            where = "the simulator" if engine == "sim" else "the trainer"
            raise SpecError(f"{what}: not modelled by {where} yet")


def kv_heads_fit(model: ModelSpec, tp: int) -> bool:
    """Whether the key/value heads split over ``tp`` tensor ranks (tp divides them; Megatron-LM)
    or are each copied to tp / kv_heads ranks (a multiple of them; as vLLM does)."""
    return model.kv % tp == 0 or tp % model.kv == 0


def check_model_split(model: ModelSpec, layout: Layout) -> None:
    if model.heads % layout.tp:
        raise SpecError(f"layout.tp: {layout.tp} does not divide model.heads ({model.heads})")
    kv = model.kv
    if not kv_heads_fit(model, layout.tp):
        raise SpecError(
            f"layout.tp: {layout.tp} neither divides nor is a multiple of model.kv_heads ({kv}); "
            "key/value heads are split over tensor ranks or each copied to tp / kv_heads ranks"
        )
    if layout.sequence_parallel and layout.tp == 1:
        raise SpecError("layout.sequence_parallel: needs layout.tp > 1 (it shards over the "
                        "tensor group)")
    if layout.sequence_parallel and model.seq_len % layout.tp:
        raise SpecError(f"layout.sequence_parallel: layout.tp ({layout.tp}) does not divide "
                        f"model.seq_len ({model.seq_len})")
    if model.ffn % layout.tp:
        raise SpecError(f"layout.tp: {layout.tp} does not divide model.ffn_hidden ({model.ffn})")
    chunks = layout.pp * layout.virtual_stages
    if model.layers % chunks:
        what = "layout.pp" if layout.virtual_stages == 1 else "layout.pp x layout.virtual_stages"
        raise SpecError(f"{what}: {chunks} does not divide model.layers ({model.layers})")
    if layout.schedule == "interleaved" and layout.pp < 2:
        raise SpecError("layout.schedule: interleaved needs layout.pp >= 2")


def check_batch(train: TrainSpec, layout: Layout) -> None:
    per_step = train.micro_batch * layout.dp
    if train.global_batch % per_step:
        raise SpecError(
            f"train.global_batch: {train.global_batch} is not a multiple of "
            f"train.micro_batch x layout.dp ({train.micro_batch} x {layout.dp} = {per_step})"
        )
    bad = [s for s in train.recompute_stages if s >= layout.pp]
    if bad:
        raise SpecError(
            f"train.recompute_stages: stage {bad[0]} does not exist with layout.pp = {layout.pp}"
        )
    if train.recompute == "selective" and not train.selective_stage_set(layout.pp):
        raise SpecError(
            "train.recompute_stages: lists every stage, so selective recompute applies nowhere; "
            "use recompute: all for full recomputation everywhere"
        )
    if train.zero_stage == 3 and layout.pp > 1:
        raise SpecError(
            f"train.zero_stage: stage 3 gathers each layer's weights from the data-parallel "
            f"ranks and needs layout.pp = 1 (got {layout.pp}); DeepSpeed does not combine it "
            "with pipeline parallelism either"
        )
    m = micro_batches_per_replica(train, layout)
    if layout.schedule == "interleaved" and m % layout.pp:
        raise SpecError(
            f"train.global_batch: the interleaved schedule needs the {m} micro-batches per "
            f"pipeline to be a multiple of layout.pp ({layout.pp})"
        )


def _check_nodes(job: Job) -> None:
    ppn = job.processes_per_node
    world = job.layout.world
    if world % ppn:
        where = ("layout.processes_per_node" if job.layout.processes_per_node
                 else "cluster.node.processes_per_node")
        raise SpecError(
            f"layout: tp x pp x dp = {world} ranks is not a multiple of "
            f"{ppn} processes per node ({where})"
        )
    limit = job.cluster.allocation.max_nodes
    if job.nodes > limit:
        raise SpecError(
            f"layout: tp x pp x dp needs {job.nodes} nodes; "
            f"cluster.allocation.max_nodes is {limit}"
        )
    ic = job.cluster.interconnect
    if isinstance(ic, SwitchedInterconnect) and job.nodes > ic.nodes:
        raise SpecError(f"layout: needs {job.nodes} nodes; the fabric has {ic.nodes}")


def check_allocation(cluster: ClusterSpec, layout: Layout, nodes: int) -> None:
    """Check the layout's allocation method against the machine's resource groups.

    Raises:
        SpecError: no resource group takes ``nodes`` nodes; the method asked for is not
            available at that size; a non-contiguous job given a multi-axis shape; an
            allocation asked for on a switched fabric.
    """
    kind = layout.allocation
    if isinstance(cluster.interconnect, SwitchedInterconnect):
        if kind is not None:
            raise SpecError(
                f"layout.allocation: {cluster.name} is a switched fabric, where nodes are not "
                "carved out of a torus; leave it unset"
            )
        return
    alloc = cluster.allocation
    kinds = alloc.kinds_for(nodes)
    if not kinds:
        raise SpecError(
            f"layout: {nodes} nodes fit no resource group of {cluster.name} "
            f"(cluster.allocation.resource_groups: {alloc.describe_groups()})"
        )
    wanted = kind or ("torus" if layout.job_shape is not None and len(layout.job_shape) > 1
                      else None)
    if wanted is not None and wanted not in kinds:
        field = "layout.allocation" if kind is not None else "layout.job_shape"
        raise SpecError(
            f"{field}: {wanted} allocation is not available for {nodes} nodes on "
            f"{cluster.name} ({alloc.describe_groups()})"
        )
    shape = layout.job_shape
    if kind == "noncont" and shape is not None and len(shape) != 1:
        raise SpecError(
            f"layout.job_shape: a noncont job asks for a node count (node=N), not the shape "
            f"{'x'.join(map(str, shape))}"
        )


def check_job_shape(cluster: ClusterSpec, shape: list[int], nodes: int) -> None:
    """Check a requested job shape against the machine and the node count.

    Raises:
        SpecError: the shape has the wrong number of axes, the wrong node count, exceeds an
            axis of the machine, or is not a whole number of allocation units.
    """
    text = "x".join(map(str, shape))
    alloc = cluster.allocation
    if len(shape) not in alloc.shape_dims_allowed:
        raise SpecError(
            f"layout.job_shape: {text} has {len(shape)} axes; {cluster.name} accepts "
            f"{' or '.join(map(str, alloc.shape_dims_allowed))}"
        )
    if math.prod(shape) != nodes:
        raise SpecError(
            f"layout.job_shape: {text} holds {math.prod(shape)} nodes but the layout needs {nodes}"
        )
    limits = cluster.virtual_axis_limits()
    if len(shape) == len(limits):
        for i, (extent, limit) in enumerate(zip(shape, limits)):
            if extent > limit:
                raise SpecError(
                    f"layout.job_shape: axis {i} is {extent} but the machine's is at most {limit}"
                )
        for i, (extent, unit) in enumerate(zip(shape, alloc.unit_shape)):
            if extent % unit:
                raise SpecError(
                    f"layout.job_shape: axis {i} ({extent}) is not a multiple of the "
                    f"allocation unit ({unit}) on that axis"
                )
