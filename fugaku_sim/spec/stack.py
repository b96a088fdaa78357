"""StackSpec: what a software stack, not the silicon, decides about a training step.

A cluster profile (:mod:`fugaku_sim.spec.cluster`) holds datasheet figures: peaks, memory,
links, the torus. What the training software makes of them lives here, in its own YAML file
(``clusters/stacks/<name>.yaml``), mixed with the hardware into one :class:`~fugaku_sim.spec.job.Job`:

- ``gemm_efficiency_scale`` multiplies the hardware's GEMM efficiency curve (or the stack's
  own ``gemm_efficiency`` curve when it gives one); the product is capped at 1 (no GEMM
  beats the peak);
- ``nongemm_efficiency`` multiplies the rate of every non-GEMM operation (the memory
  bandwidth it is priced at, or its measured per-element rate) and of the optimizer step;
- ``kernel_overhead_us`` is added to the hardware's fixed cost of launching an operation;
- ``collective_efficiency`` is the fraction of the priced bandwidth a collective reaches, by
  kind (the bytes of a collective at efficiency e cost what bytes / e cost at the network
  model's bandwidth; latencies are unchanged);
- ``step_overhead_s`` is paid once per optimizer step by every stage, ``micro_batch_overhead_s``
  once per micro-batch forward pass of every model chunk (Python, scheduling, data loading);
- ``framework_memory_GiB`` is what the framework keeps per rank beyond the model's tensors
  (allocator pools, communication buffers, the runtime itself).

The default stack, ``ideal``, is every efficiency 1 and every overhead 0: the simulator's
predictions as they were before stacks existed. A fitted stack (``fugaku-sim calibrate
--from-runs``) also carries the 90% interval of each fitted parameter (``intervals``), the
scatter of its leave-one-out residuals (``log_residual_sigma``) and its provenance (the runs
files and their sha256, the tool version, the date, the fit's statistics and covariance).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from fugaku_sim.errors import SpecError
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.cluster import GemmPoint, efficiency_on_curve
from fugaku_sim.spec.ranges import Interval, check_ranges, numeric_at

#: the stack of a job when none is named: the hardware as the simulator always priced it
DEFAULT_STACK = "ideal"


class CollectiveEfficiency(SpecModel):
    """Fraction of the network model's bandwidth each kind of collective reaches (1: all of
    it). Above 1 means faster than the network model prices it."""

    allreduce: float = Field(default=1.0, gt=0, description="ring and per-dimension all-reduce")
    p2p: float = Field(default=1.0, gt=0, description="pipeline sends")
    allgather: float = Field(
        default=1.0, gt=0, description="all-gather and reduce-scatter (ZeRO, sequence parallelism)")


class StackProvenance(SpecModel):
    """Where a fitted stack comes from, and how well it fits."""

    method: str = Field(min_length=1, description="how the figures were obtained")
    tool_version: str = ""
    date: str = ""
    runs_files: list[dict[str, str]] = Field(
        default_factory=list, description="each runs file's path and sha256")
    #: free parameters (dotted paths) in the order of ``covariance``'s rows and columns
    parameters: list[str] = Field(default_factory=list)
    #: covariance of the natural logarithms of the free parameters
    covariance: list[list[float]] = Field(default_factory=list)
    statistics: dict[str, Any] = Field(default_factory=dict)
    excluded: dict[str, str] = Field(
        default_factory=dict, description="runs left out of the fit, by id, with the reason")

    @model_validator(mode="after")
    def _square(self) -> StackProvenance:
        n = len(self.parameters)
        if self.covariance and (len(self.covariance) != n
                                or any(len(row) != n for row in self.covariance)):
            raise ValueError(f"covariance: needs {n} x {n} entries, one per parameter")
        return self


class StackSpec(SpecModel):
    """A training software stack: efficiencies, overheads and memory (see the module
    docstring)."""

    name: str = Field(min_length=1)
    description: str = ""
    gemm_efficiency_scale: float = Field(
        default=1.0, gt=0, description="multiplies the GEMM efficiency curve (capped at 1)")
    gemm_efficiency: list[GemmPoint] | None = Field(
        default=None, description="the stack's own GEMM curve, replacing the hardware's")
    nongemm_efficiency: float = Field(
        default=1.0, gt=0, description="multiplies the rate of non-GEMM operations")
    kernel_overhead_us: float = Field(
        default=0.0, ge=0, description="added to node.op_overhead_us for every operation")
    collective_efficiency: CollectiveEfficiency = Field(default_factory=CollectiveEfficiency)
    step_overhead_s: float = Field(default=0.0, ge=0, description="once per optimizer step")
    micro_batch_overhead_s: float = Field(
        default=0.0, ge=0, description="once per micro-batch forward pass of a model chunk")
    framework_memory_GiB: float = Field(default=0.0, ge=0, description="per rank")
    log_residual_sigma: float = Field(
        default=0.0, ge=0,
        description="scatter (standard deviation) of ln(measured / predicted) step time in "
        "the fit's leave-one-out: the error of the model itself, beside its parameters'")
    intervals: dict[str, Interval] = Field(
        default_factory=dict, description="90% interval of each fitted parameter, by path")
    scaled_from: str | None = Field(
        default=None, description="a what-if: the stack whose parameters it scales")
    scale_factors: dict[str, float] = Field(
        default_factory=dict, description="a what-if: the factor on each scaled parameter")
    provenance: StackProvenance | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StackSpec:
        curve = self.gemm_efficiency
        if curve is not None:
            dims = [p.min_dim for p in curve]
            if not curve or dims != sorted(set(dims)):
                raise ValueError("gemm_efficiency: min_dim values must be strictly increasing")
        check_ranges(self, self.intervals, "intervals")
        return self

    def gemm_efficiency_at(self, hardware: float, min_dim: float) -> float:
        """The stack's efficiency for a GEMM whose smallest dimension is ``min_dim``, given
        the ``hardware`` curve's value there: its own curve or the hardware's, scaled,
        capped at 1."""
        base = hardware if self.gemm_efficiency is None else efficiency_on_curve(
            self.gemm_efficiency, min_dim)
        return min(1.0, base * self.gemm_efficiency_scale)


#: the parameters a fit may free: dotted paths of the stack's numeric fields
FITTABLE: tuple[str, ...] = (
    "gemm_efficiency_scale",
    "nongemm_efficiency",
    "kernel_overhead_us",
    "collective_efficiency.allreduce",
    "collective_efficiency.p2p",
    "collective_efficiency.allgather",
    "step_overhead_s",
    "micro_batch_overhead_s",
)


#: the parameters that are efficiencies: time goes as their inverse (an overhead's as itself)
EFFICIENCIES = frozenset({"gemm_efficiency_scale", "nongemm_efficiency",
                          "collective_efficiency.allreduce", "collective_efficiency.p2p",
                          "collective_efficiency.allgather"})


def stack_value(stack: StackSpec, path: str) -> float:
    """The numeric field at dotted ``path`` (``collective_efficiency.p2p``).

    Raises:
        ValueError: the path names no numeric field of a stack.
    """
    return numeric_at(stack, path)


def with_values(stack: StackSpec, values: dict[str, Any]) -> StackSpec:
    """A copy of ``stack`` with the dotted fields of ``values`` set, *without* validation:
    the fit and the interval sampler pass plain floats or derivative-carrying ones
    (:class:`fugaku_sim.sim.perturb.Dual`) and check ranges themselves."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, fields in nested.items():
        top[head] = getattr(stack, head).model_copy(update=fields)
    return stack.model_copy(update=top)


# ---------------------------------------------------------------------------- loading


def stack_dirs() -> list[Path]:
    """Folders searched for stacks: ``stacks/`` under each cluster-profile folder."""
    from fugaku_sim.spec.load import cluster_dirs

    return [d / "stacks" for d in cluster_dirs()]


def resolve_stack_path(ref: str) -> Path:
    """The YAML file of a stack name or path.

    Raises:
        SpecError: no such stack (naming the known ones).
    """
    from fugaku_sim.spec.load import resolve_named_yaml

    return resolve_named_yaml(ref, stack_dirs(), "--stack", "stack")


@dataclass(frozen=True)
class LoadedStack:
    """A stack and the file it came from (name and sha256 go into every prediction)."""

    spec: StackSpec
    path: Path
    sha256: str

    def describe(self) -> dict[str, Any]:
        """``{"name": ..., "file": ..., "sha256": ...}`` for JSON output."""
        return {"name": self.spec.name, "file": self.path.name, "sha256": self.sha256}


def load_stack_file(ref: str | None) -> LoadedStack:
    """Load a stack by name (``ideal``) or YAML path; None means the default stack.

    Raises:
        SpecError: missing file, bad YAML, or an invalid field (named by its dotted path).
    """
    from fugaku_sim.spec.load import read_yaml, validate_section

    path = resolve_stack_path(ref or DEFAULT_STACK)
    data = read_yaml(path)
    spec = validate_section(StackSpec, data, str(path))
    return LoadedStack(spec, path, hashlib.sha256(path.read_bytes()).hexdigest())


def load_stack(ref: str | None) -> StackSpec:
    """The :class:`StackSpec` of a stack name or path (see :func:`load_stack_file`)."""
    return load_stack_file(ref).spec


#: the default stack; ``clusters/stacks/ideal.yaml`` holds the same (a test checks it)
IDEAL = StackSpec(name=DEFAULT_STACK,
                  description="the hardware as the simulator prices it; no software losses")


def stack_identity(stack: StackSpec) -> dict[str, Any]:
    """Name, file and file sha256 of a stack, for the JSON of a prediction: the file of the
    stack's name if its content is the stack's (``file`` and ``sha256`` None for a stack
    built in memory); a what-if names the stack it was scaled from, with that stack's file,
    and the factors."""
    if stack.scaled_from is not None:
        return {"name": stack.name, "file": None, "sha256": None,
                "scaled_from": _file_identity(stack.scaled_from, None),
                "scale_factors": dict(stack.scale_factors)}
    return _file_identity(stack.name, stack.model_dump_json())


@functools.lru_cache(maxsize=64)
def _file_identity(name: str, content: str | None) -> dict[str, Any]:
    """The file of stack ``name`` (when its content is ``content``, if given)."""
    try:
        loaded = load_stack_file(name)
    except SpecError:
        loaded = None
    if loaded is None or (content is not None and loaded.spec.model_dump_json() != content):
        return {"name": name, "file": None, "sha256": None}
    return loaded.describe()


def parse_scale(text: str) -> tuple[str, float]:
    """``gemm_efficiency_scale=6`` -> (path, factor).

    Raises:
        SpecError: not PATH=FACTOR with a fittable path and a positive factor.
    """
    path, sep, value = text.partition("=")
    try:
        factor = float(value)
    except ValueError:
        factor = float("nan")
    if not sep or path not in FITTABLE or not factor > 0:
        raise SpecError(f"--stack-scale: {text!r} is not PARAMETER=FACTOR with a positive "
                        f"factor and a parameter of {', '.join(FITTABLE)}")
    return path, factor


def scaled(stack: StackSpec, factors: dict[str, float]) -> StackSpec:
    """A what-if copy of ``stack``: each parameter of ``factors`` (and its interval)
    multiplied by its factor (``gemm_efficiency_scale=6``: GEMMs six times faster, up to
    the peak). The copy is named ``<name>+what-if`` and remembers where it came from."""
    if not factors:
        return stack
    data = stack.model_dump(mode="json")
    for path, f in factors.items():
        head, _, rest = path.partition(".")
        if rest:
            data[head][rest] *= f
        else:
            data[head] *= f
        if path in data["intervals"]:
            data["intervals"][path] = {k: v * f for k, v in data["intervals"][path].items()}
    what = ", ".join(f"{p} x{f:g}" for p, f in factors.items())
    data["name"] = f"{stack.name}+what-if"
    data["description"] = f"{stack.description} -- what-if: {what}".strip(" -")
    data["scaled_from"] = stack.name
    data["scale_factors"] = dict(factors)
    return StackSpec.model_validate(data)
