"""Memory per rank: weights, gradients, optimizer states, activations, workspace.

The parameters of one rank are those the trainer allocates: the sum of the local sizes of
the tensors it holds (:func:`fugaku_sim.tensors.stage_parameters`).

Sources:
- Rajbhandari et al., "ZeRO", SC20: mixed-precision Adam keeps 2 + 2 + 12 bytes per
  parameter (fp16 weights and gradients; fp32 master weights, momentum and variance); ZeRO
  stage 1 shards the optimizer states over the data-parallel group.
- Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models", 2022,
  eq. 2: with tensor parallelism and 16-bit activations one layer stores
  s b h (10 + 24/t + 5 a s/(h t)) bytes; with full recomputation only its 2 s b h byte input.
  The byte counts scale with the activation element size (x2 for fp32).
- Under 1F1B, stage s of p holds the activations of min(p - s, m) micro-batches
  (Narayanan et al., SC21); under GPipe all m. Both are read off the shared schedule.

Beside these, the job's software stack keeps ``framework_memory_GiB`` per rank (allocator
pools, communication buffers, the runtime; :mod:`fugaku_sim.spec.stack`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fugaku_sim.parallel.schedule import max_in_flight, pipeline_schedule
from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.train import TrainSpec
from fugaku_sim.tensors import stage_parameters

GiB = 2**30

#: fp32 moments an optimizer keeps per parameter (Adam: momentum and variance)
OPTIMIZER_MOMENTS = {"adam": 2, "adamw": 2, "sgd": 0}


def parameter_bytes(train: TrainSpec) -> tuple[int, int, int]:
    """Bytes per parameter of (weights, gradients, optimizer states).

    Weights and gradients are held at the training precision; the optimizer keeps its fp32
    moments and, when training in 16 bits, an fp32 master copy of the weights (ZeRO, SC20:
    2 + 2 + 12 for mixed-precision Adam).

    >>> parameter_bytes(TrainSpec(global_batch=1, precision="fp16", optimizer="adam"))
    (2, 2, 12)
    """
    fp32 = element_bytes("fp32")
    weights = element_bytes(train.precision)
    master = fp32 if weights < fp32 else 0
    return weights, weights, master + fp32 * OPTIMIZER_MOMENTS[train.optimizer]


@dataclass(frozen=True)
class StageMemory:
    """Bytes one rank of a pipeline stage needs, by kind."""

    stage: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    workspace: float
    micro_batches_in_flight: int
    recompute: bool
    framework: float = 0.0  # what the software stack keeps per rank

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations
                + self.workspace + self.framework)

    def as_GiB(self) -> dict[str, float | int | bool]:
        out: dict[str, float | int | bool] = {
            k: (v / GiB if isinstance(v, float) else v) for k, v in asdict(self).items()
        }
        out["total"] = self.total / GiB
        return out


def activation_bytes_per_layer(job: Job, recompute: bool) -> float:
    """Activation bytes one transformer layer keeps for one micro-batch (Korthikanti eq. 2)."""
    m, t = job.model, job.layout.tp
    s, b, h, a = m.seq_len, job.train.micro_batch, m.hidden, m.heads
    scale = element_bytes(job.train.precision) / 2  # the paper counts 2-byte activations
    if recompute:
        return 2.0 * s * b * h * scale
    return s * b * h * (10 + 24 / t + 5 * a * s / (h * t)) * scale


def in_flight(job: Job, stage: int) -> int:
    """Micro-batches whose activations ``stage`` holds at once, from the shared schedule."""
    lay = job.layout
    ops = pipeline_schedule(lay.schedule, lay.pp, stage, job.micro_batches, lay.virtual_stages)
    return max_in_flight(ops)


def stage_memory(job: Job, stage: int) -> StageMemory:
    """Memory of one rank of ``stage`` (bytes)."""
    model, train, lay = job.model, job.train, job.layout
    params = stage_parameters(model, lay, stage)
    w, g, o = parameter_bytes(train)
    optimizer = params * o / (lay.dp if train.zero_stage >= 1 else 1)
    recompute = stage in job.recompute_stages
    layers = model.layers // lay.pp
    flights = in_flight(job, stage)
    per_mb = layers * activation_bytes_per_layer(job, recompute)
    if lay.virtual_stages > 1:
        per_mb /= lay.virtual_stages  # in_flight counts chunk passes, each 1/v of the layers
    act_bytes = element_bytes(train.precision)
    tokens = model.seq_len * train.micro_batch
    if recompute:
        # the layer being recomputed needs its full activations during its backward
        per_layer_full = activation_bytes_per_layer(job, recompute=False)
    else:
        per_layer_full = 0.0
    logits = 0.0
    if stage == lay.pp - 1:
        # logits and their gradient for the micro-batch in its backward
        logits = 2.0 * tokens * model.vocab / lay.tp * act_bytes
    workspace = per_layer_full + logits + 4.0 * tokens * model.ffn / lay.tp * act_bytes
    return StageMemory(
        stage=stage,
        weights=float(params * w),
        gradients=float(params * g),
        optimizer=float(optimizer),
        activations=float(flights * per_mb),
        workspace=float(workspace),
        micro_batches_in_flight=flights,
        recompute=recompute,
        framework=float(job.stack.framework_memory_GiB * GiB),
    )


def memory_by_stage(job: Job) -> list[StageMemory]:
    """Memory of one rank of every pipeline stage."""
    return [stage_memory(job, s) for s in range(job.layout.pp)]


def peak_memory_per_node(job: Job, stages: list[StageMemory] | None = None) -> float:
    """Bytes the fullest node needs: the largest stage times processes per node
    (``stages``: :func:`memory_by_stage` of ``job`` when already computed)."""
    stages = stages if stages is not None else memory_by_stage(job)
    return max(m.total for m in stages) * job.processes_per_node


def fits_memory(job: Job, peak_bytes: float | None = None) -> bool:
    """Whether the fullest node fits in the node's usable memory (``peak_bytes``:
    :func:`peak_memory_per_node` of ``job`` when already computed)."""
    peak = peak_bytes if peak_bytes is not None else peak_memory_per_node(job)
    return peak <= job.cluster.node.usable_mem_bytes
