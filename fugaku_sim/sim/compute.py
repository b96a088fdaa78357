"""Compute: FLOPs, bytes and time of every operation of a transformer block on one rank.

Shape key (nanoGPT's): B micro-batch, T sequence, C hidden, F MLP width, A heads, D = C / A
head size, V vocabulary, t tensor-parallel degree, e bytes per element. Tensor parallelism is
Megatron's (Shoeybi et al., 2019): the query/key/value and first MLP projections split by
columns, the output and last MLP projections by rows, heads split over t, so each rank does
1/t of every GEMM and attention head. Every GEMM's shape is the local [in, out] of its weight
in the model's tensor table, found by role (:meth:`fugaku_sim.tensors.TensorTable.find`), so
the same code prices GPT-2's fused QKV projection and Llama's separate q, k and v projections
with ``kv_heads`` key/value heads (fewer columns; copied when fewer than t).

The ops of a block, by family (the attention core is materialized or flash, see
:func:`attention_core_ops`; a model that trains with dropout, GPT-2 unless its ``dropout``
is 0, has the dropouts Megatron-LM's GPT has, Llama none):

- GPT-2: layernorm1, qkv, [core], projection | dropout_residual1, layernorm2, fc1, gelu, fc2 |
  dropout_residual2;
- Llama: rmsnorm1, q, k, v, rotary, [core], projection | residual1, rmsnorm2, gate, up, silu,
  gate_mul, down | residual2.

An operation takes the slower of its arithmetic and its memory traffic, plus a fixed cost
(roofline with launch overhead; Williams et al., CACM 2009)::

    time = max(flops / (peak x gemm_efficiency(min_dim)), bytes / mem_bw) + op_overhead

Non-GEMM operations run at the node's peak for their few FLOPs and are memory-bound in
practice. Their kinds (:data:`ELEMENTWISE_KINDS`), with FLOPs and passes (reads + writes) per
element: ``layernorm`` 8, 2; ``rmsnorm`` 4, 2; ``softmax`` 5, 3 (with dropout) or 4, 2;
``gelu`` 8, 2; ``silu`` 4, 2; ``gate_mul`` 1, 3; ``rotary`` 3, 2; ``residual`` 2, 3 (with
dropout) or 1, 3; ``embedding`` 1, 3 plus a dropout 1, 2 (token + position) or 0, 2 (a token
gather); ``cross_entropy`` 5, 3. When the profile measures a per-element rate for an
operation's kind and direction (``node.elementwise_Gelem_per_s``, key ``<kind>_fwd`` or
``<kind>_bwd``, e.g. ``gelu_fwd``, ``silu_bwd``; fitted by ``fugaku-sim calibrate`` from the
trainer's kernels), that op instead takes ``elements / rate + op_overhead``: software that
evaluates tanh and exp elementwise and allocates temporaries (numpy) is not bound by the
memory traffic alone, and its forward and backward costs differ by kind. The backward pass of
a GEMM is two GEMMs of the same shape class (input gradient and weight gradient), twice the
forward FLOPs (Narayanan et al., SC21, appendix); elementwise backwards read about twice what
the forward did. Peak, memory bandwidth and the GEMM efficiency curve are per node in the
profile and divided among the node's processes. The job's software stack
(:mod:`fugaku_sim.spec.stack`) scales the GEMM efficiency (capped at 1) and the rate of
non-GEMM operations, and adds its kernel overhead to the launch cost (:func:`op_time_s`); the
ideal stack changes nothing.

How these ops make up a pass, with the collectives between them, is
:mod:`fugaku_sim.sim.segments`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fugaku_sim.spec.figures import element_bytes
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import tensor_table

#: the kinds of non-GEMM operations; each may have a measured rate per direction
ELEMENTWISE_KINDS = ("layernorm", "rmsnorm", "softmax", "gelu", "silu", "gate_mul", "rotary",
                     "residual", "embedding", "cross_entropy")


@dataclass(frozen=True)
class OpCost:
    """One operation on one rank. ``min_dim`` is the smallest GEMM dimension (0: not a GEMM);
    an elementwise op has a ``kind`` (:data:`ELEMENTWISE_KINDS`), its ``elements`` and whether
    it is a ``backward``; ``backward_flops`` is its backward's FLOPs over its own."""

    name: str
    flops: float
    bytes: float
    min_dim: int = 0
    kind: str = ""
    elements: float = 0.0
    backward: bool = False
    backward_flops: float = 2.0

    @property
    def rate_key(self) -> str:
        """Key of the op's per-element rate in ``NodeSpec.elementwise_Gelem_per_s``."""
        return f"{self.kind}_{'bwd' if self.backward else 'fwd'}" if self.kind else ""


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


def _tokens(job: Job) -> int:
    """Tokens of one micro-batch (B T)."""
    return job.train.micro_batch * job.model.seq_len


def _dropout(job: Job) -> bool:
    """Whether the model trains with dropout (``model.dropout``, or its family's: GPT-2,
    Radford et al. 2019, drops out the embeddings, the attention probabilities and both
    residual branches, as Megatron-LM's GPT does; the Llama family trains without)."""
    return job.model.dropout_rate > 0


def _features(job: Job, role: str, layer: int | None) -> tuple[int, int]:
    """(in, out) features of one tensor rank's part of the ``role`` weight of block ``layer``
    (``None``: the embedding or head).

    Raises:
        ValueError: the model has no weight of that role.
    """
    row = tensor_table(job.model).find(role, layer)
    if row is None:
        raise ValueError(f"{job.model.name} has no {role} weight")
    return row.features(job.layout.tp)


def linear_op(job: Job, name: str, role: str, layer: int | None = 0) -> OpCost:
    """The GEMM of the linear layer whose weight has ``role`` (block ``layer``'s, or the head's
    with ``layer=None``) over one micro-batch: [B T, in] x [in, out] with the in and out
    features of one tensor rank's part (the model's tensor table, as the trainer allocates it).

    Raises:
        ValueError: the model has no weight of that role.
    """
    k, n = _features(job, role, layer)
    return gemm(name, _tokens(job), n, k, element_bytes(job.train.precision))


def norm_op(job: Job, name: str) -> OpCost:
    """A layer norm (8 FLOPs per element: mean, centre, square, sum, scale by 1/std, weight,
    bias) or an RMSNorm (4: square, sum, scale, weight; Zhang and Sennrich 2019: no mean pass
    and no shift) over [B T, C]; fused, either reads its input and writes its output once."""
    n, e = _tokens(job) * job.model.hidden, element_bytes(job.train.precision)
    if job.model.norm == "rmsnorm":
        return elementwise(name, n, e, 4, 2, "rmsnorm")
    return elementwise(name, n, e, 8, 2, "layernorm")


def _out_features(job: Job, role: str) -> int:
    """Output features of one tensor rank's part of block 0's ``role`` weight."""
    return _features(job, role, 0)[1]


def local_heads(job: Job) -> tuple[int, int]:
    """(query heads, key/value heads) one tensor rank computes: A/t, and kv/t, or one copied
    head when there are fewer key/value heads than tensor ranks (grouped-query attention)."""
    m, d = job.model, job.model.head_dim
    q = m.heads // job.layout.tp
    if tensor_table(m).find("k", 0) is not None:
        return q, _out_features(job, "k") // d
    return q, (_out_features(job, "qkv") // d - q) // 2  # the fused [q | k | v] projection


def rotary_op(job: Job) -> OpCost:
    """Rotary position embedding (Su et al. 2021) of this rank's queries and keys: x cos +
    rotate(x) sin, 3 FLOPs per element, one read and one write (the [T, D] tables stay in
    cache)."""
    q_heads, kv_heads = local_heads(job)
    width = (q_heads + kv_heads) * job.model.head_dim
    return elementwise("rotary", _tokens(job) * width, element_bytes(job.train.precision), 3, 2,
                       "rotary")


def attention_core_ops(job: Job) -> list[OpCost]:
    """Scores, softmax and weighted values of this rank's query heads (all of them: grouped
    key/value heads are shared, not fewer scores).

    Materialized (``train.attention: materialized``): two batched GEMMs and a softmax over the
    [B, A/t, T, T] scores in memory (scale and mask fused; 5 FLOPs and 3 passes per score with
    the dropout of the GPT-2 family, 4 and 2 without); under grouped-query attention the copy
    that repeats each key/value head for its query heads is not priced (it moves a [B T, C/t]
    tensor, against the [B, A/t, T, T] scores). Flash (Dao et al. 2022; FlashAttention-2, Dao
    2023): one fused kernel that keeps the scores on chip (:func:`flash_attention_op`).
    """
    if job.train.attention == "flash":
        return [flash_attention_op(job)]
    m, t, e = job.model, job.layout.tp, element_bytes(job.train.precision)
    b, s = job.train.micro_batch, m.seq_len
    heads = m.heads // t
    softmax = (elementwise("softmax", b * heads * s * s, e, 5, 3, "softmax") if _dropout(job)
               else elementwise("softmax", b * heads * s * s, e, 4, 2, "softmax"))
    return [
        gemm("scores", s, s, m.head_dim, e, batch=b * heads),
        softmax,
        gemm("attn_values", s, m.head_dim, s, e, batch=b * heads),
    ]


#: FLOPs of a causal FlashAttention kernel relative to the full T x T scores: the blocks above
#: the diagonal are skipped (Dao 2023, section 3.1.1)
FLASH_CAUSAL_SHARE = 0.5
#: backward FLOPs of FlashAttention over its forward: five T x T x D matrix products (the
#: scores recomputed, and the gradients of values, probabilities, queries and keys) against
#: two (Dao 2023, section 4.1: the backward counts 2.5x the forward)
FLASH_BACKWARD_FLOPS = 2.5


def flash_attention_op(job: Job) -> OpCost:
    """The fused attention kernel of one micro-batch on one rank: 4 B (A/t) T^2 D FLOPs for
    the score and value products, of which the causal kernel runs :data:`FLASH_CAUSAL_SHARE`;
    memory traffic of reading Q, K, V and writing the output and its fp32 log-sum-exp (the
    scores never reach memory). Its tiles are products over the head size D, so it is priced
    on the GEMM efficiency curve at D, as the materialized score GEMMs are."""
    m, e = job.model, element_bytes(job.train.precision)
    b, s, d = job.train.micro_batch, m.seq_len, m.head_dim
    q_heads, kv_heads = local_heads(job)
    flops = 4.0 * b * q_heads * s * s * d * FLASH_CAUSAL_SHARE
    traffic = e * b * s * d * (2 * q_heads + 2 * kv_heads) + 4.0 * b * q_heads * s
    return OpCost("flash_attention", flops, float(traffic), d,
                  backward_flops=FLASH_BACKWARD_FLOPS)


def attention_ops(job: Job) -> list[OpCost]:
    """Forward ops of the attention half of a block, up to the projection: the norm, the
    query/key/value projection (GPT-2's fused one, or Llama's three with ``kv_heads`` key and
    value heads), rotary positions where the model has them, the attention core, the output
    projection."""
    m = job.model
    if tensor_table(m).find("qkv", 0) is not None:
        projections = [linear_op(job, "qkv", "qkv")]
    else:
        projections = [linear_op(job, "q", "q"), linear_op(job, "k", "k"),
                       linear_op(job, "v", "v")]
    if m.positions == "rotary":
        projections.append(rotary_op(job))
    return [norm_op(job, f"{m.norm}1"), *projections, *attention_core_ops(job),
            linear_op(job, "projection", "attn_out")]


def residual_op(job: Job, name: str = "residual2") -> OpCost:
    """A residual add over [B T, C] (2 reads, 1 write), with the dropout of the branch in the
    GPT-2 family (``dropout_residual``: 2 FLOPs per element)."""
    n, e = _tokens(job) * job.model.hidden, element_bytes(job.train.precision)
    if _dropout(job):
        return elementwise(f"dropout_{name}", n, e, 2, 3, "residual")
    return elementwise(name, n, e, 1, 3, "residual")


def mlp_ops(job: Job) -> list[OpCost]:
    """Forward ops of the MLP half of a block (after the first all-reduce): the first residual,
    the norm, then GPT-2's fc1, GELU (tanh form, 8 FLOPs per element), fc2; or Llama's SwiGLU
    (Shazeer 2020): gate and up projections, SiLU of the gate (x / (1 + exp(-x)), 4 FLOPs),
    their product (``gate_mul``: 1 FLOP, two reads and a write), the down projection."""
    m, e = job.model, element_bytes(job.train.precision)
    ops = [residual_op(job, "residual1"), norm_op(job, f"{m.norm}2")]
    if m.mlp == "gelu":
        fc1 = linear_op(job, "fc1", "mlp_in")
        width = _tokens(job) * _out_features(job, "mlp_in")
        return ops + [fc1, elementwise("gelu", width, e, 8, 2, "gelu"),
                      linear_op(job, "fc2", "mlp_out")]
    width = _tokens(job) * _out_features(job, "mlp_gate")
    return ops + [linear_op(job, "gate", "mlp_gate"), linear_op(job, "up", "mlp_up"),
                  elementwise("silu", width, e, 4, 2, "silu"),
                  elementwise("gate_mul", width, e, 1, 3, "gate_mul"),
                  linear_op(job, "down", "mlp_out")]


def backward_of(op: OpCost) -> OpCost:
    """The backward of ``op``: two GEMMs for a GEMM (``backward_flops`` times the forward's
    FLOPs in all), twice the traffic for the rest."""
    return OpCost(op.name + "_bwd", op.backward_flops * op.flops, 2.0 * op.bytes, op.min_dim,
                  op.kind, op.elements, backward=True)


def op_overhead_s(job: Job) -> float:
    """Fixed cost of one operation: the hardware's launch cost plus the stack's, both
    processor time of one process on a core of its own. With more processes than cores on
    a node each has cores / processes of a core, and that time stretches as the rates
    shrink (measured: gpt-micro at tp 2 x dp 2, 4 processes on 2 cores, each rank's 16.5 ms
    of compute a step took 33 ms of the step's wall time, its launch costs included)."""
    node = job.cluster.node
    crowding = max(1.0, job.processes_per_node / node.cores)
    return (node.op_overhead_us + job.stack.kernel_overhead_us) * 1e-6 * crowding


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


def embedding_forward_ops(job: Job) -> list[OpCost]:
    """The input embedding (first stage): GPT-2's token + position lookup and sum (1 FLOP, two
    reads and a write per element) and its dropout; Llama's token lookup alone (a gather: one
    read, one write). GPT-2's embedding dropout is priced whatever ``model.dropout`` says:
    the calibration fits the trainer's embedding (which has none) over these two ops, so they
    stay as they are until it describes its kernels without dropout
    (:mod:`fugaku_sim.calibrate.kernels`)."""
    e = element_bytes(job.train.precision)
    n = _tokens(job) * job.model.hidden
    if job.model.positions == "rotary":
        return [elementwise("embedding", n, e, 0, 2, "embedding")]
    return [elementwise("embedding", n, e, 1, 3, "embedding"),
            elementwise("embedding_dropout", n, e, 1, 2, "embedding")]


def embedding_backward_ops(job: Job) -> list[OpCost]:
    """Backward of the input embedding (first stage): the backward of each forward op, then
    the gradient of this tensor rank's [V / t, C] token table, which a dense embedding
    backward builds whole every micro-batch and adds into the parameter's gradient (PyTorch's
    ``embedding_dense_backward`` and autograd's accumulation; the trainer's
    ``embedding_backward`` and ``embed_backward``): 4 passes over the table (zero it, then
    read it and the gradient, write the gradient)."""
    table = tensor_table(job.model).find("tok_embed")
    n = float(table.local_size(job.layout.tp)) if table else 0.0  # every model has one
    grad = OpCost("embedding_table_grad", n, 4.0 * n * element_bytes(job.train.precision),
                  kind="embedding", elements=n, backward=True)
    return [backward_of(op) for op in embedding_forward_ops(job)] + [grad]


def head_forward_ops(job: Job) -> list[OpCost]:
    """Final norm, logits over the vocabulary shard, cross-entropy (last stage). The head's
    GEMM is the [V / t, C] ``lm_head`` weight: the tied copy of the embedding or, untied, a
    weight of its own (the same shape)."""
    m, t, e = job.model, job.layout.tp, element_bytes(job.train.precision)
    tokens = _tokens(job)
    return [
        norm_op(job, f"final_{m.norm}"),
        linear_op(job, "lm_head", "head", layer=None),
        elementwise("cross_entropy", tokens * m.vocab / t, e, 5, 3, "cross_entropy"),
    ]


def optimizer_rate_key(kind: str) -> str:
    """Key of an optimizer's measured rate (parameters updated per second, clipping and the
    gradient norm included) in ``NodeSpec.elementwise_Gelem_per_s``."""
    return f"optimizer_{kind}"


def optimizer_time_s(job: Job, params: int, tensors: int) -> float:
    """One optimizer step over ``params`` local parameters in ``tensors`` tensors:
    memory-bound streaming of weights, gradients and states (Adam reads w, g, m, v and writes
    w, m, v: 7 fp32 arrays), one fused op per tensor; at the stack's non-GEMM efficiency.
    When the profile measured the optimizer's rate (:func:`optimizer_rate_key`; software
    that makes more passes than the seven, such as numpy's one array expression at a time),
    the parameters take that (at the same efficiency)."""
    node, ppn = job.cluster.node, job.processes_per_node
    arrays = {"adam": 7, "adamw": 7, "sgd": 3}[job.train.optimizer]
    if job.train.zero_stage >= 1:
        params = params // job.layout.dp
    overhead_s = tensors * op_overhead_s(job)
    efficiency = job.stack.nongemm_efficiency
    rate = node.elementwise_Gelem_per_s.get(optimizer_rate_key(job.train.optimizer))
    if rate:
        return params / (rate * 1e9 / ppn * efficiency) + overhead_s
    bytes_moved = params * 4.0 * arrays
    return bytes_moved / (node.mem_bw_Bps / ppn * efficiency) + overhead_s
