"""ClusterSpec: the hardware ("where") — nodes, interconnect, allocation, scheduler.

All figures carry their unit in the field name and are converted once, by the properties at
the bottom of each class (bytes per second, seconds, FLOP/s). Hardware numbers live in
``clusters/*.yaml`` with their sources; nothing here hard-codes a machine.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from fugaku_sim.errors import SpecError
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.campaign import CampaignProfile
from fugaku_sim.spec.limits import (
    CLOCK_GHZ,
    FILESYSTEM_BW_GBPS,
    LATENCY_US,
    LINK_BW_GBPS,
    MAX_MACHINE_NODES,
    NODE_CORES,
    NODE_ELEMENT_RATE_GELEM,
    NODE_INJECTION_BW_GBPS,
    NODE_MEM_BW_GBPS,
    NODE_MEM_GIB,
    NODE_PEAK_TFLOPS,
    NODE_POWER_W,
    at_most,
)
from fugaku_sim.spec.ranges import AssumedRange, check_endpoints, check_ranges, with_numbers

Precision = Literal["fp64", "fp32", "fp16", "bf16"]

# Figures bounded by the fastest real hardware (spec/limits.py names it and the margin).
PeakRate = Annotated[float, at_most(NODE_PEAK_TFLOPS)]
LinkRate = Annotated[float, at_most(LINK_BW_GBPS)]
Latency = Annotated[float, at_most(LATENCY_US)]
NodeCount = Annotated[int, at_most(NODE_CORES)]
FileSystemRate = Annotated[float, at_most(FILESYSTEM_BW_GBPS)]


class PeakTFLOPs(SpecModel):
    """Peak arithmetic rate of one node, TFLOP/s, per precision."""

    fp64: PeakRate = Field(gt=0)
    fp32: PeakRate = Field(gt=0)
    fp16: PeakRate = Field(gt=0)
    bf16: PeakRate = Field(gt=0)


class GemmPoint(SpecModel):
    """One point of the GEMM efficiency curve: the fraction of peak reached by a GEMM whose
    smallest dimension (min of m, n, k) is ``min_dim``."""

    min_dim: int = Field(gt=0)
    efficiency: float = Field(gt=0, le=1)


def efficiency_on_curve(points: list[GemmPoint], min_dim: float) -> float:
    """A GEMM efficiency curve's value at ``min_dim``: piecewise-linear in log2(min_dim)
    between the points, flat beyond the ends."""
    if min_dim <= points[0].min_dim:
        return points[0].efficiency
    if min_dim >= points[-1].min_dim:
        return points[-1].efficiency
    x = math.log2(min_dim)
    for lo, hi in zip(points, points[1:]):
        if min_dim <= hi.min_dim:
            x0, x1 = math.log2(lo.min_dim), math.log2(hi.min_dim)
            t = (x - x0) / (x1 - x0)
            return lo.efficiency + t * (hi.efficiency - lo.efficiency)
    return points[-1].efficiency  # pragma: no cover - loop always returns


class NodeSpec(SpecModel):
    """One compute node. Rates and capacities are per node; a process gets its share."""

    cores: NodeCount = Field(gt=0)
    clock_GHz: Annotated[float, at_most(CLOCK_GHZ)] = Field(gt=0)
    peak_TFLOPs: PeakTFLOPs
    mem_GiB: Annotated[float, at_most(NODE_MEM_GIB)] = Field(
        gt=0, description="memory capacity of the node (all devices)")
    mem_bw_GBps: Annotated[float, at_most(NODE_MEM_BW_GBPS)] = Field(
        gt=0, description="memory bandwidth of the node, 1e9 B/s")
    gemm_efficiency: list[GemmPoint] = Field(min_length=1)
    op_overhead_us: Latency = Field(ge=0, description="fixed cost of launching one operation")
    processes_per_node: NodeCount = Field(default=1, gt=0)
    devices_per_node: NodeCount = Field(default=1, gt=0,
                                        description="accelerators (1 for a CPU node)")
    power_W: Annotated[float, at_most(NODE_POWER_W)] = Field(
        gt=0, description="average power of a node under load")
    mem_reserved_GiB: float = Field(
        default=0.0, ge=0, description="memory the OS and runtime keep from the job"
    )
    elementwise_Gelem_per_s: dict[str, Annotated[float, at_most(NODE_ELEMENT_RATE_GELEM)]] = Field(
        default_factory=dict,
        description="optional measured rates of non-GEMM operations, 1e9 elements/s per node, "
        "by kind and direction, <kind>_fwd or <kind>_bwd for the kinds layernorm, rmsnorm, "
        "softmax, gelu, silu, gate_mul, rotary, residual, embedding, cross_entropy (e.g. "
        "gelu_fwd, silu_bwd); an op of a listed kind takes elements / rate instead of its "
        "bytes / mem_bw (empty: every op is priced by its memory traffic); "
        "optimizer_adam, optimizer_adamw, optimizer_sgd: parameters updated per second",
    )

    @model_validator(mode="after")
    def _curve_sorted(self) -> NodeSpec:
        dims = [p.min_dim for p in self.gemm_efficiency]
        if dims != sorted(set(dims)):
            raise ValueError("gemm_efficiency: min_dim values must be strictly increasing")
        bad = [k for k, v in self.elementwise_Gelem_per_s.items() if not v > 0]
        if bad:
            raise ValueError(f"elementwise_Gelem_per_s: {bad[0]}: rates must be positive")
        if self.mem_reserved_GiB >= self.mem_GiB:
            raise ValueError(f"mem_reserved_GiB: {self.mem_reserved_GiB:g} leaves nothing of "
                             f"mem_GiB ({self.mem_GiB:g}) to the job")
        return self

    def gemm_efficiency_at(self, min_dim: float) -> float:
        """Fraction of peak for a GEMM whose smallest dimension is ``min_dim``
        (:func:`efficiency_on_curve` of the profile's curve)."""
        return efficiency_on_curve(self.gemm_efficiency, min_dim)

    def peak_flops(self, precision: Precision) -> float:
        """Peak FLOP/s of the whole node at ``precision``."""
        return float(getattr(self.peak_TFLOPs, precision)) * 1e12

    @property
    def mem_bytes(self) -> float:
        return self.mem_GiB * 2**30

    @property
    def usable_mem_bytes(self) -> float:
        return (self.mem_GiB - self.mem_reserved_GiB) * 2**30

    @property
    def mem_bw_Bps(self) -> float:
        return self.mem_bw_GBps * 1e9


class TorusDim(SpecModel):
    """One physical dimension of a torus or mesh."""

    name: str = Field(min_length=1)
    size: int = Field(gt=0)
    wrap: bool = True


class TorusInterconnect(SpecModel):
    """A direct N-dimensional torus/mesh network (Tofu Interconnect D and the like)."""

    kind: Literal["torus"]
    dims: list[TorusDim] = Field(min_length=1)
    link_bw_GBps: LinkRate = Field(gt=0, description="per link, per direction")
    hop_latency_us: Latency = Field(ge=0, description="added by each router hop")
    injection_latency_us: Latency = Field(ge=0, description="end-to-end latency of a short put")
    injection_engines: NodeCount = Field(gt=0, description="network interfaces (TNIs) per node")
    injection_bw_GBps: Annotated[float, at_most(NODE_INJECTION_BW_GBPS)] = Field(
        gt=0, description="total a node can inject at once")
    intra_node_bw_GBps: LinkRate = Field(
        default=50.0,
        gt=0,
        description="between processes on one node (shared memory), per process, per direction",
    )

    @model_validator(mode="after")
    def _names_unique(self) -> TorusInterconnect:
        names = [d.name for d in self.dims]
        if len(set(names)) != len(names):
            raise ValueError(f"dims: dimension names must be unique, got {names}")
        if self.nodes > MAX_MACHINE_NODES:
            raise ValueError(f"dims: the sizes make {self.nodes} nodes, above the "
                             f"{MAX_MACHINE_NODES} this tool models (fugaku_sim/spec/limits.py)")
        return self

    @property
    def nodes(self) -> int:
        return math.prod(d.size for d in self.dims)

    def dim_index(self, name: str) -> int:
        return [d.name for d in self.dims].index(name)

    @property
    def link_bw_Bps(self) -> float:
        return self.link_bw_GBps * 1e9


class SwitchLevel(SpecModel):
    """One level of a switched network: bandwidth per endpoint and latency."""

    bw_GBps: LinkRate = Field(gt=0, description="per endpoint, per direction")
    latency_us: Latency = Field(ge=0)
    links_per_node: NodeCount = Field(default=1, gt=0, description="rails or ports per node")


class SwitchedInterconnect(SpecModel):
    """Accelerators on an intra-node switch (NVSwitch) joined by a fat tree (InfiniBand)."""

    kind: Literal["switched"]
    nodes: int = Field(gt=0, le=MAX_MACHINE_NODES, description="nodes the fabric connects")
    intra_node: SwitchLevel
    inter_node: SwitchLevel
    oversubscription: float = Field(default=1.0, ge=1.0, description="fat-tree taper")


Interconnect = Annotated[TorusInterconnect | SwitchedInterconnect, Field(discriminator="kind")]


AllocationKind = Literal["torus", "mesh", "noncont"]


class ResourceGroup(SpecModel):
    """A resource group of the batch system: the node counts a job in it may ask for and the
    node allocation methods it accepts (Fugaku: ``torus``, ``mesh``, ``noncont``; the first
    listed is the group's default)."""

    name: str = Field(min_length=1)
    min_nodes: int = Field(gt=0)
    max_nodes: int = Field(gt=0)
    kinds: list[AllocationKind] = Field(min_length=1)
    max_elapse_h: float | None = Field(
        default=None, gt=0,
        description="elapsed limit of a job in the group, hours (none: scheduler.max_elapse_h)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ResourceGroup:
        if self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes: {self.max_nodes} is below min_nodes ({self.min_nodes})")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds: an allocation method is listed twice in {self.kinds}")
        return self

    def describe(self) -> str:
        """``small: 1-384 nodes, noncont/mesh/torus``."""
        return f"{self.name}: {self.min_nodes}-{self.max_nodes} nodes, {'/'.join(self.kinds)}"


class AllocationSpec(SpecModel):
    """How jobs are carved out of the machine.

    ``virtual_axes`` lists, for each axis of a requested job shape, the physical dimensions it
    folds (Fugaku: the 3-D shape ``48x6x48`` folds (X, a), (Y, b), (Z, c)). ``unit_shape`` is
    the allocation granule along each virtual axis (Fugaku: the Tofu unit a x b x c = 2x3x2).

    ``resource_groups`` say which node counts may ask for which allocation method: ``torus``
    (and ``mesh``) jobs get a block of whole units in a virtual shape; a ``noncont``
    (non-contiguous) job gets its nodes wherever they are free. Without resource groups every
    job is a torus job. ``noncont_seed`` seeds the draw that scatters a non-contiguous job's
    units over the machine (:mod:`fugaku_sim.sim.noncont`), so a prediction is repeatable.
    """

    max_nodes: int = Field(gt=0, description="largest job the machine accepts")
    virtual_axes: list[list[str]] = Field(default_factory=list)
    unit_shape: list[int] = Field(default_factory=list)
    shape_dims_allowed: list[int] = Field(default_factory=lambda: [1])
    resource_groups: list[ResourceGroup] = Field(default_factory=list)
    noncont_seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _unit_matches(self) -> AllocationSpec:
        if self.unit_shape and len(self.unit_shape) != len(self.virtual_axes):
            raise ValueError("unit_shape: needs one entry per virtual axis")
        if any(u <= 0 for u in self.unit_shape):
            raise ValueError("unit_shape: entries must be positive")
        names = [g.name for g in self.resource_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"resource_groups: group names must be unique, got {names}")
        for i, group in enumerate(self.resource_groups):
            if group.max_nodes > self.max_nodes:
                raise ValueError(
                    f"resource_groups.{i}.max_nodes: {group.max_nodes} exceeds max_nodes "
                    f"({self.max_nodes})"
                )
        return self

    def kinds_for(self, nodes: int) -> list[AllocationKind]:
        """Allocation methods a job of ``nodes`` nodes may ask for, defaults first; empty when
        no resource group takes that many nodes."""
        if not self.resource_groups:
            return ["torus"] if nodes <= self.max_nodes else []
        out: list[AllocationKind] = []
        for group in self.resource_groups:
            if group.min_nodes <= nodes <= group.max_nodes:
                out += [k for k in group.kinds if k not in out]
        return out

    def resource_group_for(self, nodes: int, kind: str) -> ResourceGroup | None:
        """The first resource group that takes ``nodes`` nodes allocated as ``kind`` (None
        when none does, or the machine has no resource groups)."""
        for group in self.resource_groups:
            if group.min_nodes <= nodes <= group.max_nodes and kind in group.kinds:
                return group
        return None

    def describe_groups(self) -> str:
        """One line listing the resource groups (for error messages)."""
        return "; ".join(g.describe() for g in self.resource_groups) or "no resource groups"


class SchedulerSpec(SpecModel):
    """The batch system that runs jobs, with the defaults its job scripts need.

    The user's own settings (``group``, ``account``, ``llio_volumes``, ``llio``, ``setup``)
    have no default: set them in a copy of the profile or with ``plan --emit-job``'s options.
    """

    kind: Literal["pjm", "slurm", "local"]
    resource_group: str | None = None
    partition: str | None = Field(default=None, description="Slurm partition (#SBATCH)")
    account: str | None = Field(default=None, description="Slurm account (#SBATCH --account)")
    group: str | None = Field(
        default=None, description="PJM group charged for the job (#PJM -g), e.g. hp240123")
    llio_volumes: str | None = Field(
        default=None, description="volumes LLIO caches for a PJM job (PJM_LLIO_GFSCACHE), "
        "e.g. /vol0004:/vol0005")
    llio: list[str] = Field(default_factory=list,
                            description="#PJM --llio options, e.g. localtmp-size=50Gi")
    job_resources: dict[str, str] = Field(
        default_factory=dict,
        description="further #PJM -L resources every job asks for (power knobs: eco_state ...)")
    setup: str | None = Field(
        default=None, description="shell line a job script runs before training (modules, a "
        "virtual environment with fugaku-sim)")
    max_elapse_h: float = Field(default=24.0, gt=0)


class ClusterSpec(SpecModel):
    """A machine: its nodes, network, allocation rules and scheduler."""

    name: str = Field(min_length=1)
    description: str = ""
    node: NodeSpec
    interconnect: Interconnect
    allocation: AllocationSpec
    scheduler: SchedulerSpec
    mtbf_node_h: float = Field(
        default=1.0e6, gt=0, description="mean time between failures of one node, hours"
    )
    checkpoint_write_GBps: FileSystemRate = Field(
        default=100.0, gt=0, description="aggregate file-system write rate for checkpoints"
    )
    campaign: CampaignProfile = Field(
        default_factory=CampaignProfile,
        description="start-up, checkpoint read rate, failure shape and queue wait of a job chain",
    )
    assumed: dict[str, AssumedRange] = Field(
        default_factory=dict,
        description="figures with no public source: dotted path -> plausible {low, high} and "
        "how to measure it (predictions sample within the ranges)",
    )

    @model_validator(mode="after")
    def _allocation_fits(self) -> ClusterSpec:
        check_ranges(self, self.assumed, "assumed")
        check_endpoints(self, self.assumed, "assumed")
        ic = self.interconnect
        total = ic.nodes
        if self.allocation.max_nodes > total:
            raise ValueError(
                f"allocation.max_nodes: {self.allocation.max_nodes} exceeds the "
                f"{total} nodes of the interconnect"
            )
        if isinstance(ic, TorusInterconnect):
            names = {d.name for d in ic.dims}
            for i, axis in enumerate(self.allocation.virtual_axes):
                unknown = [a for a in axis if a not in names]
                if unknown:
                    raise ValueError(
                        f"allocation.virtual_axes.{i}: unknown dimension {unknown[0]!r}"
                    )
        return self

    def with_given(self, values: dict[str, Any]) -> ClusterSpec:
        """A validated copy with the fields at the dotted paths of ``values`` set: figures
        given now, so the ranges ``assumed`` for them (and for anything under them) go.

        Raises:
            SpecError: a value breaks a rule of the profile (``cluster.<path>: ...``).
        """
        assumed = {p: r for p, r in self.assumed.items()
                   if not any(p == v or p.startswith(v + ".") for v in values)}
        return with_numbers(self.model_copy(update={"assumed": assumed}), values, "cluster")

    def virtual_axis_limits(self) -> list[int]:
        """Largest extent of each virtual job axis (product of the physical sizes it folds)."""
        ic = self.interconnect
        if not isinstance(ic, TorusInterconnect):
            return []
        sizes = {d.name: d.size for d in ic.dims}
        return [math.prod(sizes[a] for a in axis) for axis in self.allocation.virtual_axes]


def at_clock(cluster: ClusterSpec, clock_GHz: float | None) -> ClusterSpec:
    """``cluster`` with its cores at ``clock_GHz`` (None or the profile's clock: unchanged).

    Peak arithmetic rates scale with the core clock (A64FX: 3.072 TFLOP/s FP64 per node at
    2.0 GHz, 3.379 at 2.2, the datasheet's ratio of 1.1); memory and network rates do not.

    Raises:
        SpecError: the scaled peak is above the limit of a node's peak.
    """
    node = cluster.node
    if clock_GHz is None or clock_GHz == node.clock_GHz:
        return cluster
    ratio = clock_GHz / node.clock_GHz
    peak = {k: v * ratio for k, v in node.peak_TFLOPs.model_dump().items()}
    try:
        scaled = PeakTFLOPs.model_validate(peak)
    except ValidationError:  # a clock far from the profile's scales a peak past its limit
        raise SpecError(f"clock_GHz: {clock_GHz:g} GHz on {cluster.name} (profiled at "
                        f"{node.clock_GHz:g} GHz) puts a peak above "
                        f"{NODE_PEAK_TFLOPS.high:g} {NODE_PEAK_TFLOPS.unit}") from None
    node = node.model_copy(update={"clock_GHz": clock_GHz, "peak_TFLOPs": scaled})
    return cluster.model_copy(update={"node": node})
