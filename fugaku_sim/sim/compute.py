"""Compute: FLOPs, bytes and time of every operation of a GPT block on one rank.

Shape key (nanoGPT's): B micro-batch, T sequence, C hidden, F MLP width, A heads, D = C / A
head size, V vocabulary, t tensor-parallel degree, e bytes per element. Tensor parallelism is
Megatron's (Shoeybi et al., 2019): QKV and fc1 split by columns, projection and fc2 by rows,
heads split over t, so each rank does 1/t of every GEMM and attention head.

An operation takes the slower of its arithmetic and its memory traffic, plus a fixed cost
(roofline with launch overhead; Williams et al., CACM 2009)::

    time = max(flops / (peak x gemm_efficiency(min_dim)), bytes / mem_bw) + op_overhead

Non-GEMM operations (norms, softmax, GELU, dropout, residual adds) run at the node's peak for
their few FLOPs and are memory-bound in practice. When the profile measures a per-element rate
for an operation's kind and direction (``node.elementwise_Gelem_per_s``, e.g. ``gelu_fwd``;
fitted by ``fugaku-sim calibrate`` from the trainer's kernels), that op instead takes
``elements / rate + op_overhead``: software that evaluates tanh and exp elementwise and
allocates temporaries (numpy) is not bound by the memory traffic alone, and its forward and
backward costs differ by kind. The backward pass of a GEMM is two GEMMs of
the same shape class (input gradient and weight gradient), twice the forward FLOPs
(Narayanan et al., SC21, appendix); elementwise backwards read about twice what the forward
did. Peak, memory bandwidth and the GEMM efficiency curve are per node in the profile and
divided among the node's processes. The job's software stack (:mod:`fugaku_sim.spec.stack`)
scales the GEMM efficiency (capped at 1) and the rate of non-GEMM operations, and adds its
kernel overhead to the launch cost (:func:`op_time_s`); the ideal stack changes nothing.

A layer is a list of :class:`Segment` items in execution order: compute runs, and the two
tensor-parallel all-reduces (after the attention projection and after fc2 in the forward;
at the inputs of fc1 and QKV in the backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import WTE, layer_name, tensor_table


@dataclass(frozen=True)
class OpCost:
    """One operation on one rank. ``min_dim`` is the smallest GEMM dimension (0: not a GEMM);
    an elementwise op has a ``kind`` (layernorm, softmax, gelu, residual, embedding,
    cross_entropy), its ``elements`` and whether it is a ``backward``."""

    name: str
    flops: float
    bytes: float
    min_dim: int = 0
    kind: str = ""
    elements: float = 0.0
    backward: bool = False

    @property
    def rate_key(self) -> str:
        """Key of the op's per-element rate in ``NodeSpec.elementwise_Gelem_per_s``."""
        return f"{self.kind}_{'bwd' if self.backward else 'fwd'}" if self.kind else ""


@dataclass(frozen=True)
class Segment:
    """A run of compute (``seconds``) or a tensor-parallel all-reduce (``nbytes``)."""

    kind: Literal["compute", "tp"]
    seconds: float = 0.0
    nbytes: float = 0.0


def gemm(name: str, m: int, n: int, k: int, e: int, batch: int = 1) -> OpCost:
    """A (batched) GEMM C[m, n] = A[m, k] B[k, n]: 2 m n k FLOPs, reads A, B, writes C."""
    return OpCost(
        name, 2.0 * m * n * k * batch, float(e * batch * (m * k + k * n + m * n)), min(m, n, k)
    )


def elementwise(name: str, elements: float, e: int, flops_per: float, passes: float,
                kind: str = "") -> OpCost:
    """An elementwise op of ``kind`` touching ``elements`` values ``passes`` times (reads +
    writes)."""
    return OpCost(name, flops_per * elements, passes * elements * e, kind=kind,
                  elements=float(elements))


def local_weight(job: Job, name: str) -> tuple[int, ...]:
    """Shape of one tensor rank's part of tensor ``name`` ([in, out] for a block matrix;
    the model's tensor table, as the trainer allocates it)."""
    return tensor_table(job.model)[name].local_shape(job.layout.tp)


def attention_ops(job: Job) -> list[OpCost]:
    """Forward ops of the attention half of a block, up to the projection."""
    m, t, e = job.model, job.layout.tp, element_bytes(job.train.precision)
    b, s, c = job.train.micro_batch, m.seq_len, m.hidden
    tokens, heads = b * s, m.heads // t
    qkv_in, qkv_out = local_weight(job, layer_name(0, "attn.c_attn.weight"))
    proj_in, proj_out = local_weight(job, layer_name(0, "attn.c_proj.weight"))
    return [
        elementwise("layernorm1", tokens * c, e, 8, 2, "layernorm"),
        gemm("qkv", tokens, qkv_out, qkv_in, e),
        gemm("scores", s, s, m.head_dim, e, batch=b * heads),
        elementwise("softmax", b * heads * s * s, e, 5, 3, "softmax"),  # scale+mask, softmax, dropout
        gemm("attn_values", s, m.head_dim, s, e, batch=b * heads),
        gemm("projection", tokens, proj_out, proj_in, e),
    ]


def mlp_ops(job: Job) -> list[OpCost]:
    """Forward ops of the MLP half of a block (after the first all-reduce)."""
    m, e = job.model, element_bytes(job.train.precision)
    tokens, c = job.train.micro_batch * m.seq_len, m.hidden
    fc1_in, fc1_out = local_weight(job, layer_name(0, "mlp.c_fc.weight"))
    fc2_in, fc2_out = local_weight(job, layer_name(0, "mlp.c_proj.weight"))
    return [
        elementwise("dropout_residual1", tokens * c, e, 2, 3, "residual"),
        elementwise("layernorm2", tokens * c, e, 8, 2, "layernorm"),
        gemm("fc1", tokens, fc1_out, fc1_in, e),
        elementwise("gelu", tokens * fc1_out, e, 8, 2, "gelu"),
        gemm("fc2", tokens, fc2_out, fc2_in, e),
    ]


def residual_op(job: Job) -> OpCost:
    tokens, e = job.train.micro_batch * job.model.seq_len, element_bytes(job.train.precision)
    return elementwise("dropout_residual2", tokens * job.model.hidden, e, 2, 3, "residual")


def backward_of(op: OpCost) -> OpCost:
    """The backward of ``op``: two GEMMs for a GEMM, twice the traffic for the rest."""
    return OpCost(op.name + "_bwd", 2.0 * op.flops, 2.0 * op.bytes, op.min_dim, op.kind,
                  op.elements, backward=True)


def op_overhead_s(job: Job) -> float:
    """Fixed cost of one operation: the hardware's launch cost plus the stack's."""
    return (job.cluster.node.op_overhead_us + job.stack.kernel_overhead_us) * 1e-6


def op_time_s(op: OpCost, job: Job) -> float:
    """Roofline time of one op on one process (see the module docstring), on the job's
    software stack: its GEMM efficiency on the curve, its non-GEMM efficiency on the memory
    bandwidth or the measured per-element rate, its kernel overhead on the launch cost."""
    node, ppn, stack = job.cluster.node, job.processes_per_node, job.stack
    overhead = op_overhead_s(job)
    rate = node.elementwise_Gelem_per_s.get(op.rate_key) if not op.min_dim else None
    if rate:
        return op.elements / (rate * 1e9 / ppn * stack.nongemm_efficiency) + overhead
    peak = node.peak_flops(job.train.precision) / ppn
    mem_bw = node.mem_bw_Bps / ppn
    if op.min_dim:
        efficiency = stack.gemm_efficiency_at(node.gemm_efficiency_at(op.min_dim), op.min_dim)
        return max(op.flops / (peak * efficiency), op.bytes / mem_bw) + overhead
    return max(op.flops / peak, op.bytes / (mem_bw * stack.nongemm_efficiency)) + overhead


def _run(ops: list[OpCost], job: Job) -> Segment:
    return Segment("compute", seconds=sum(op_time_s(op, job) for op in ops))


def activation_message_bytes(job: Job) -> float:
    """Bytes of one micro-batch's hidden states [B, T, C] (all-reduce and p2p payload)."""
    m = job.model
    return float(job.train.micro_batch * m.seq_len * m.hidden * element_bytes(job.train.precision))


def layer_forward(job: Job) -> list[Segment]:
    """Forward of one block: attention, all-reduce, MLP, all-reduce, residual."""
    msg = activation_message_bytes(job)
    tp = job.layout.tp > 1
    out = [_run(attention_ops(job), job)]
    out += [Segment("tp", nbytes=msg)] if tp else []
    out += [_run(mlp_ops(job), job)]
    out += [Segment("tp", nbytes=msg)] if tp else []
    out += [_run([residual_op(job)], job)]
    return out


def layer_backward(job: Job) -> list[Segment]:
    """Backward of one block in reverse order; all-reduces at the inputs of fc1 and QKV."""
    msg = activation_message_bytes(job)
    tp = job.layout.tp > 1
    mlp = [backward_of(op) for op in reversed(mlp_ops(job))]
    attn = [backward_of(op) for op in reversed(attention_ops(job))]
    out = [_run([backward_of(residual_op(job))] + mlp[:-2], job)]  # up to fc1's input grad
    out += [Segment("tp", nbytes=msg)] if tp else []
    out += [_run(mlp[-2:] + attn[:-1], job)]  # layernorm2, residual1 ... qkv
    out += [Segment("tp", nbytes=msg)] if tp else []
    out += [_run(attn[-1:], job)]  # layernorm1
    return out


def embedding_forward_ops(job: Job) -> list[OpCost]:
    """Token + position embedding lookup and dropout (first stage)."""
    e = element_bytes(job.train.precision)
    n = job.train.micro_batch * job.model.seq_len * job.model.hidden
    return [elementwise("embedding", n, e, 1, 3, "embedding"),
            elementwise("embedding_dropout", n, e, 1, 2, "embedding")]


def head_forward_ops(job: Job) -> list[OpCost]:
    """Final layer norm, logits over the vocabulary shard, cross-entropy (last stage)."""
    m, t, e = job.model, job.layout.tp, element_bytes(job.train.precision)
    tokens = job.train.micro_batch * m.seq_len
    vocab_rows, hidden = local_weight(job, WTE)  # the head is the [V / t, C] embedding part
    return [
        elementwise("final_layernorm", tokens * m.hidden, e, 8, 2, "layernorm"),
        gemm("lm_head", tokens, vocab_rows, hidden, e),
        elementwise("cross_entropy", tokens * m.vocab / t, e, 5, 3, "cross_entropy"),
    ]


def head_forward(job: Job) -> list[Segment]:
    """LM head forward; vocabulary-parallel cross-entropy all-reduces 3 per-token values."""
    out = [_run(head_forward_ops(job), job)]
    if job.layout.tp > 1:
        tokens = job.train.micro_batch * job.model.seq_len
        out += [Segment("tp", nbytes=3.0 * tokens * 4)]
    return out


def head_backward(job: Job) -> list[Segment]:
    """LM head backward; the input gradient of the vocabulary-parallel head is all-reduced."""
    out = [_run([backward_of(op) for op in reversed(head_forward_ops(job))], job)]
    if job.layout.tp > 1:
        out += [Segment("tp", nbytes=activation_message_bytes(job))]
    return out


def stage_segments(
    job: Job, stage: int, kind: Literal["F", "B"], chunk_layers: int, first: bool, last: bool
) -> list[Segment]:
    """Segments of one forward or backward pass of ``chunk_layers`` layers on a stage;
    ``first``/``last`` mark the model chunks holding the embedding and the LM head."""
    if kind == "F":
        out = [_run(embedding_forward_ops(job), job)] if first else []
        for _ in range(chunk_layers):
            out += layer_forward(job)
        return out + (head_forward(job) if last else [])
    out = head_backward(job) if last else []
    for _ in range(chunk_layers):
        out += layer_backward(job)
    if first:
        out += [_run([backward_of(op) for op in embedding_forward_ops(job)], job)]
    return out


def optimizer_time_s(job: Job, params: int, tensors: int) -> float:
    """One optimizer step over ``params`` local parameters in ``tensors`` tensors:
    memory-bound streaming of weights, gradients and states (Adam reads w, g, m, v and writes
    w, m, v: 7 fp32 arrays), one fused op per tensor; at the stack's non-GEMM efficiency."""
    node, ppn = job.cluster.node, job.processes_per_node
    arrays = {"adam": 7, "adamw": 7, "sgd": 3}[job.train.optimizer]
    if job.train.zero_stage >= 1:
        params = params // job.layout.dp
    bytes_moved = params * 4.0 * arrays
    mem_bw = node.mem_bw_Bps / ppn * job.stack.nongemm_efficiency
    return bytes_moved / mem_bw + tensors * op_overhead_s(job)
