"""Memory per rank: weights, gradients, optimizer states, activations, workspace, framework.

The parameters of one rank are those the trainer allocates: the sum of the local sizes of
the tensors it holds (:func:`fugaku_sim.tensors.stage_parameters`). The parts are
:data:`fugaku_sim.spec.breakdown.MEMORY_KEYS`, the keys the trainer's tracked peak uses.

Sources:
- Rajbhandari et al., "ZeRO", SC20: mixed-precision Adam keeps 2 + 2 + 12 bytes per
  parameter (fp16 weights and gradients; fp32 master weights, momentum and variance); ZeRO
  stage 1 shards the optimizer states over the data-parallel group, stage 2 also the
  gradients, stage 3 also the weights. A ZeRO-2 rank also holds the gradient bucket being
  filled (``train.grad_bucket_MB``) and, with ``overlap_grad_reduce``, those being reduced
  (:data:`~fugaku_sim.spec.train.ZERO_BUCKETS_IN_FLIGHT`). ZeRO-3 gathers and reduces
  whole units, as PyTorch FSDP does (Zhao et al. 2023; ``torch.distributed.fsdp``: each
  wrapped module's flat parameter is all-gathered before its forward and backward, and its
  gradient reduce-scattered after its backward): the *root* (embeddings, final norm, head),
  gathered from a micro-batch's forward to the end of its backward (FSDP2's ``fully_shard``
  does not reshard the root after the forward, since the backward starts with it), and each
  transformer block, gathered for its pass with the next one prefetched. Beside its shard a
  ZeRO-3 rank so holds the root and two blocks of weights, and the gradients of the largest
  unit (more with overlap, as above): the units are its gradient buckets.
- Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models", 2022,
  section 4 and table 2: with tensor parallelism and 16-bit activations one GPT layer stores
  s b h (10 + 24/t + 5 a s/(h t)) bytes; with full recomputation only its 2 s b h byte input.
  The byte counts scale with the activation element size (x2 for fp32). Other layers (Llama,
  grouped-query attention, flash attention) are priced by the same count made tensor by tensor
  (:func:`kept_activations`), which gives eq. 2 back for a GPT layer. Of it, the 10 s b h of
  the norms' inputs and outputs and the residual dropouts' masks are whole on every tensor
  rank; sequence parallelism splits them over t too (table 2: 34 s b h / t + 5 a s^2 b / t),
  and it splits the layer input that full recomputation keeps (Megatron-LM checkpoints the
  sequence-parallel hidden states: 2 s b h / t). Selective recomputation drops the attention
  core (5 a s^2 b / t; table 2: s b h (10 + 24 / t), or 34 s b h / t with sequence
  parallelism).
- Under 1F1B, stage s of p holds the activations of min(p - s, m) micro-batches
  (Narayanan et al., SC21); under GPipe all m. Both are read off the shared schedule.

Beside these, the job's software stack keeps ``framework_memory_GiB`` per rank (allocator
pools, communication buffers, the runtime; :mod:`fugaku_sim.spec.stack`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from fugaku_sim.parallel.schedule import schedule_in_flight
from fugaku_sim.sim.compute import local_heads
from fugaku_sim.sim.segments import unit_parameters
from fugaku_sim.spec.breakdown import MEMORY_KEYS
from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.train import ZERO_BUCKETS_IN_FLIGHT, TrainSpec
from fugaku_sim.tensors import layout_chunks, stage_parameters

GiB = 2**30

#: fp32 moments an optimizer keeps per parameter (Adam: momentum and variance)
OPTIMIZER_MOMENTS = {"adam": 2, "adamw": 2, "sgd": 0}
#: how a stage treats its activations
Recomputation = Literal["none", "selective", "full"]


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
    """Bytes one rank of a pipeline stage needs, by part (:data:`MEMORY_KEYS`)."""

    stage: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    workspace: float
    framework: float
    micro_batches_in_flight: int
    recompute: Recomputation

    @property
    def total(self) -> float:
        return sum(self.parts().values())

    def parts(self) -> dict[str, float]:
        """Bytes of each part, in :data:`MEMORY_KEYS` order."""
        return {k: getattr(self, k) for k in MEMORY_KEYS}

    def as_GiB(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            k: (v / GiB if isinstance(v, float) else v) for k, v in asdict(self).items()
        }
        out["total"] = self.total / GiB
        return out


def stage_recomputation(job: Job, stage: int) -> Recomputation:
    """Whether ``stage`` recomputes whole layers, only the attention core, or nothing."""
    if stage in job.recompute_stages:
        return "full"
    return "selective" if stage in job.train.selective_stage_set(job.layout.pp) else "none"


#: parts of :func:`kept_activations`: whole on every tensor rank unless sequence-parallel ...
NORMS, DROPOUT_MASKS = "norm inputs and outputs", "residual dropout masks"
#: ... and the attention core's, which selective recomputation drops
PROBABILITIES, LOG_SUM_EXP = "attention probabilities", "attention log-sum-exp"
SEQUENCE_REGION, ATTENTION_CORE = (NORMS, DROPOUT_MASKS), (PROBABILITIES, LOG_SUM_EXP)


def kept_activations(job: Job) -> dict[str, float]:
    """Bytes one transformer layer keeps for its backward for one micro-batch on one tensor
    rank, by tensor, counted as Korthikanti et al. (2022, section 4.1) count a GPT layer: 2
    bytes per 16-bit element, 1 per dropout mask, element by element of what Megatron-LM keeps.

    - both norms' inputs and outputs (the inputs of the q/k/v and the first MLP projections),
      whole on every tensor rank: 8 s b h;
    - the queries and keys the scores are made of (after rotary positions, whose backward needs
      only its tables) and the values: 2 s b (q + 2 kv) with q and kv this rank's query and
      key/value widths. Under grouped-query attention the flash kernel reads the kv heads as
      they are (fewer columns); materialized attention repeats each key/value head for its
      group of query heads before the score and value products (Megatron-LM's
      ``repeat_interleave``, Hugging Face's ``repeat_kv``), which keep the repeated ones: kv = q;
    - the attention core: materialized, the softmax output 2 a s^2 b / t (and, with dropout, its
      1-byte mask and 2-byte output); flash, only the fp32 log-sum-exp per query, the output it
      also needs being the projection's input;
    - the output projection's input 2 s b q;
    - the MLP: GELU's input and output (2 x 2 s b f / t); SwiGLU's gate and up projections and
      their product (3 x 2 s b f / t; Megatron-LM's fused SwiGLU recomputes the SiLU);
    - with dropout (``model.dropout``, or GPT-2's 0.1 when unset), the 1-byte masks of the
      two residual branches.

    A GPT-2 layer with dropout (f = 4 h, no grouped heads, materialized) sums to eq. 2,
    s b h (10 + 24/t + 5 a s/(h t)); without, the masks and the softmax's dropout (3 a s^2 b /
    t) go. Elements are scaled to the training precision (x2 for fp32).
    """
    m, t, e = job.model, job.layout.tp, element_bytes(job.train.precision)
    s, b, h = m.seq_len, job.train.micro_batch, m.hidden
    n, scale, dropout = s * b, e / 2, m.dropout_rate > 0
    heads, kv_heads = local_heads(job)
    flash = job.train.attention == "flash"
    q_width, kv_width = heads * m.head_dim, (kv_heads if flash else heads) * m.head_dim
    ffn = m.ffn / t
    out = {
        NORMS: 8.0 * n * h * scale,
        "queries, keys, values": 2.0 * n * (q_width + 2 * kv_width) * scale,
        "projection input": 2.0 * n * q_width * scale,
        "mlp": (3 if m.mlp == "swiglu" else 2) * 2.0 * n * ffn * scale,
    }
    if flash:
        out[LOG_SUM_EXP] = 4.0 * heads * n
    else:
        out[PROBABILITIES] = (5 if dropout else 2) * heads * s * n * scale
    if dropout:
        out[DROPOUT_MASKS] = 2.0 * n * h * scale
    return out


def activation_bytes_per_layer(job: Job, mode: Recomputation) -> float:
    """Activation bytes one transformer layer keeps for one micro-batch: its input under full
    recomputation (split over t with sequence parallelism); Korthikanti eq. 2 for a GPT layer
    with dropout, materialized multi-head attention and nothing else (as it always was, f =
    4 h assumed); otherwise the sum of :func:`kept_activations`, the sequence-parallel region
    split over t and, under selective recomputation, without the attention core."""
    m, lay = job.model, job.layout
    s, b, h, a, t = m.seq_len, job.train.micro_batch, m.hidden, m.heads, lay.tp
    scale = element_bytes(job.train.precision) / 2  # the paper counts 2-byte activations
    shard = t if lay.sequence_parallel else 1
    if mode == "full":
        return 2.0 * s * b * h * scale / shard
    plain = (m.family == "gpt2" and m.dropout_rate > 0 and m.kv == m.heads
             and job.train.attention == "materialized")
    if mode == "none" and shard == 1 and plain:
        return s * b * h * (10 + 24 / t + 5 * a * s / (h * t)) * scale
    return sum(v / (shard if k in SEQUENCE_REGION else 1)
               for k, v in kept_activations(job).items()
               if not (mode == "selective" and k in ATTENTION_CORE))


def attention_core_bytes(job: Job) -> float:
    """Bytes of one layer's attention core for one micro-batch on one tensor rank: what
    selective recomputation rebuilds in the backward."""
    return sum(v for k, v in kept_activations(job).items() if k in ATTENTION_CORE)


def in_flight(job: Job, stage: int) -> int:
    """Micro-batches whose activations ``stage`` holds at once, from the shared schedule (in
    closed form: a huge global batch is sized without listing its passes)."""
    lay = job.layout
    return schedule_in_flight(lay.schedule, lay.pp, stage, job.micro_batches,
                              lay.virtual_stages)


def workspace_bytes(job: Job, stage: int, mode: Recomputation) -> float:
    """Transient bytes at the peak: the layer under recomputation (all its activations
    for a full one, its attention core for a selective one), the logits and their gradient
    on the last stage, and the MLP's GEMM temporaries."""
    model, lay, train = job.model, job.layout, job.train
    act_bytes = element_bytes(train.precision)
    tokens = model.seq_len * train.micro_batch
    recomputed = {"full": activation_bytes_per_layer(job, "none"),
                  "selective": attention_core_bytes(job), "none": 0.0}[mode]
    logits = 2.0 * tokens * model.vocab / lay.tp * act_bytes if stage == lay.pp - 1 else 0.0
    return recomputed + logits + 4.0 * tokens * model.ffn / lay.tp * act_bytes


def parameter_memory(job: Job, stage: int) -> tuple[float, float, float]:
    """Bytes of (weights, gradients, optimizer states) one rank of ``stage`` holds, by ZeRO
    stage (see the module docstring)."""
    train, lay = job.train, job.layout
    params = stage_parameters(job.model, lay, stage)
    w, g, o = parameter_bytes(train)
    dp = lay.dp
    zero = train.zero_stage if dp > 1 else 0  # nothing to shard over one rank (the trainer's)
    weights, gradients, optimizer = float(params * w), float(params * g), float(params * o)
    if zero >= 1:
        optimizer /= dp
    buckets = 1 + (ZERO_BUCKETS_IN_FLIGHT if train.overlap_grad_reduce else 0)
    if zero == 2:
        gradients = gradients / dp + min(buckets * train.grad_bucket_MB * 2**20, gradients)
    if zero >= 3:
        units = [unit_parameters(job, stage, c) for c in layout_chunks(job.model, lay, stage)]
        root = float(sum(emb + head for emb, _, head in units))
        block = float(units[0][1])
        weights = weights / dp + (root + 2.0 * block) * w
        gradients = gradients / dp + buckets * max(root, block) * g
    return weights, gradients, optimizer


def stage_memory(job: Job, stage: int) -> StageMemory:
    """Memory of one rank of ``stage`` (bytes), the software stack's own memory per rank
    included (``job.stack.framework_memory_GiB``)."""
    lay = job.layout
    mode = stage_recomputation(job, stage)
    per_mb = job.model.layers // lay.pp * activation_bytes_per_layer(job, mode)
    if lay.virtual_stages > 1:
        per_mb /= lay.virtual_stages  # in_flight counts chunk passes, each 1/v of the layers
    flights = in_flight(job, stage)
    weights, gradients, optimizer = parameter_memory(job, stage)
    return StageMemory(
        stage=stage,
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=float(flights * per_mb),
        workspace=float(workspace_bytes(job, stage, mode)),
        framework=float(job.stack.framework_memory_GiB * GiB),
        micro_batches_in_flight=flights,
        recompute=mode,
    )


def memory_by_stage(job: Job) -> list[StageMemory]:
    """Memory of one rank of every pipeline stage."""
    return [stage_memory(job, s) for s in range(job.layout.pp)]


def peak_stage(stages: list[StageMemory]) -> StageMemory:
    """The stage whose ranks need the most memory (the first of equals)."""
    return max(stages, key=lambda m: m.total)


def peak_memory_per_node(job: Job, stages: list[StageMemory] | None = None) -> float:
    """Bytes the fullest node needs: the largest stage times processes per node
    (``stages``: :func:`memory_by_stage` of ``job`` when already computed)."""
    stages = stages if stages is not None else memory_by_stage(job)
    return peak_stage(stages).total * job.processes_per_node


def fits_memory(job: Job, peak_bytes: float | None = None) -> bool:
    """Whether the fullest node fits in the node's usable memory (``peak_bytes``:
    :func:`peak_memory_per_node` of ``job`` when already computed)."""
    peak = peak_bytes if peak_bytes is not None else peak_memory_per_node(job)
    return peak <= job.cluster.node.usable_mem_bytes
