"""Segments: one forward or backward pass of a stage as compute runs and collectives, in order.

A pass is a list of :class:`Segment` items: compute runs (the ops of
:mod:`fugaku_sim.sim.compute`, priced there); collectives over the tensor group (``tp``) or
the data-parallel group (``dp``) that block the compute until they end; and collectives
*started* on a stream of their own (a CUDA stream, a nonblocking MPI call), which run while
the compute goes on until a ``wait`` segment joins them. Collectives on one stream run one
after the other, in the order they were started.

Tensor parallelism (Megatron-LM; Shoeybi et al. 2019): an all-reduce of the hidden states
[B, T, C] after the attention projection and after fc2 in the forward, at the inputs of fc1
and QKV in the backward.

Sequence parallelism (Korthikanti et al., "Reducing Activation Recomputation in Large
Transformer Models", 2022, section 4.2.2 and figure 5; Megatron-LM's
``LinearWithGradAccumulationAndAsyncCommunication``): the ops before the first GEMM of each
block (layer norms, dropout and residual adds) and the residual add after it run on T / t
tokens per rank. Forward: an all-gather before the column-parallel projections (QKV, or
q, k and v; fc1, or gate and up), a reduce-scatter after the row-parallel ones (the
attention's output projection, fc2 or down). Backward, the reverse: an all-gather of the
output gradient before the row-parallel projection's backward; at the column-parallel ones
the norm's output, kept only as the rank's T / t slice, is all-gathered again while the input
gradients are computed, and the input gradient is reduce-scattered while the weight gradients
are computed (both overlapped, as Megatron-LM does). The LM head is a column-parallel linear
layer too.

Selective recomputation (Korthikanti et al. 2022, section 5): the attention core
(:func:`fugaku_sim.sim.compute.attention_core_ops`: scores, softmax with its dropout,
attention over values; or the flash kernel) runs its forward again in the backward, right
before its own backward; it is charged to ``recompute``. Full recomputation is a whole forward pass, run by the engine.

ZeRO (Rajbhandari et al., "ZeRO", SC20) as DeepSpeed runs it, with ``overlap_comm``: stage 2
reduce-scatters the gradients over the data-parallel group during every micro-batch's
backward, a bucket of about ``train.grad_bucket_MB`` (the trainer's bucket size) as soon as
the layers that fill it have produced their gradients (at layer granularity: a bucket starts
when the layer that fills it ends its backward), on a stream of its own; the backward ends
when the last bucket is reduced (DeepSpeed synchronises at the end of each backward). Stage
3 also all-gathers each unit's weights (embedding, each layer, head) before its forward and
again before its backward; the next unit's gather is started before the current unit
computes (a prefetch depth of one, as DeepSpeed's and FSDP's prefetch). Gathers and
reductions share one data-parallel stream, in the order they are started (a backward
unit's gather is started before the reduction of the unit before it, so the prefetch comes
first; DeepSpeed and FSDP use two streams, whose transfers would share the same links).
The weights and the optimizer step at the end of the step are the engine's.

:func:`time_pass` is the fast mode's price of a pass (one timeout); the engine plays the
segments one by one when collectives must share the network with others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from fugaku_sim.parallel import ModelChunk
from fugaku_sim.sim.collectives import Collective
from fugaku_sim.sim.compute import (
    OpCost,
    attention_core_ops,
    attention_ops,
    backward_of,
    embedding_backward_ops,
    embedding_forward_ops,
    head_forward_ops,
    mlp_ops,
    op_time_s,
    residual_op,
)
from fugaku_sim.spec.figures import element_bytes, sequence_shard_tokens
from fugaku_sim.spec.job import Job
from fugaku_sim.tensors import chunk_parameters, tensor_table

SegmentKind = Literal["compute", "tp", "dp", "wait"]
#: the breakdown key each group's exposed communication is charged to
COMM_CATEGORY = {"tp": "tp_comm", "dp": "dp_comm"}
#: short names of the collectives, for trace labels
OP_LABEL = {"allreduce": "all-reduce", "reduce_scatter": "reduce-scatter",
            "all_gather": "all-gather"}


@dataclass(frozen=True)
class Segment:
    """A run of compute (``seconds``), a collective of ``op`` on ``nbytes`` (the whole
    message) over the ``tp`` or ``dp`` group, or a ``wait`` for a started collective.

    A collective with a ``stream`` is started there and runs beside the compute; ``handle``
    numbers it within its pass, and a ``wait`` names the handle it joins. ``recompute``
    marks compute re-run for selective recomputation.
    """

    kind: SegmentKind
    seconds: float = 0.0
    nbytes: float = 0.0
    op: Collective = "allreduce"
    recompute: bool = False
    stream: str = ""
    handle: int = -1


@dataclass
class PassBuilder:
    """Appends the segments of one pass and numbers its started collectives. Ops given to
    :meth:`run` gather into one compute run until a collective, a wait or the end of a unit
    (:meth:`flush`) closes it."""

    job: Job
    out: list[Segment] = field(default_factory=list)
    pending: list[OpCost] = field(default_factory=list)
    pending_recompute: bool = False
    handles: int = 0

    def run(self, ops: list[OpCost], recompute: bool = False) -> None:
        if recompute != self.pending_recompute:
            self.flush()
        self.pending += ops
        self.pending_recompute = recompute

    def flush(self) -> None:
        if self.pending:
            seconds = sum(op_time_s(op, self.job) for op in self.pending)
            self.out.append(Segment("compute", seconds=seconds, recompute=self.pending_recompute))
        self.pending, self.pending_recompute = [], False

    def collective(self, group: Literal["tp", "dp"], nbytes: float,
                   op: Collective = "allreduce") -> None:
        self.flush()
        self.out.append(Segment(group, nbytes=nbytes, op=op))

    def start(self, group: Literal["tp", "dp"], nbytes: float, op: Collective,
              stream: str) -> int:
        self.flush()
        handle, self.handles = self.handles, self.handles + 1
        self.out.append(Segment(group, nbytes=nbytes, op=op, stream=stream, handle=handle))
        return handle

    def wait(self, handle: int) -> None:
        self.flush()
        self.out.append(Segment("wait", handle=handle))


def activation_message_bytes(job: Job) -> float:
    """Bytes of one micro-batch's hidden states [B, T, C]: a tensor all-reduce's payload,
    and the whole message of the all-gathers and reduce-scatters of sequence parallelism."""
    m = job.model
    return float(job.train.micro_batch * m.seq_len * m.hidden * element_bytes(job.train.precision))


def p2p_message_bytes(job: Job) -> float:
    """Bytes one tensor rank sends to its pipeline neighbour per micro-batch: the hidden
    states [B, T, C] whole (DeepSpeed's pipeline engine, which Fugaku-LLM used, sends whole
    tensors), or its T / t slice under sequence parallelism (Megatron-LM)."""
    return activation_message_bytes(job) / (
        job.model.seq_len // sequence_shard_tokens(job.model, job.layout))


def sequence_shard(op: OpCost, tp: int) -> OpCost:
    """``op`` on T / tp of the tokens (an elementwise op in a sequence-parallel region)."""
    return replace(op, flops=op.flops / tp, bytes=op.bytes / tp, elements=op.elements / tp)


def split_at_gemm(ops: list[OpCost]) -> tuple[list[OpCost], list[OpCost]]:
    """(ops before the block's first GEMM, the rest): the sequence-parallel region of a
    block (its norm, and the dropout and residual of the block before) and the
    tensor-parallel region."""
    first = next(i for i, op in enumerate(ops) if op.min_dim)
    return ops[:first], ops[first:]


def leading_gemms(block: list[OpCost]) -> list[OpCost]:
    """The GEMMs a block starts with: its column-parallel projections (GPT-2's QKV or
    Llama's q, k and v; fc1, or Llama's gate and up), which read the norm's output."""
    count = next((i for i, op in enumerate(block) if not op.min_dim), len(block))
    return block[:count]


def gemm_halves(op: OpCost) -> tuple[OpCost, OpCost]:
    """The backward of a GEMM as its two GEMMs of the forward's shape class: the input
    gradient and the weight gradient (:func:`backward_of` is their sum)."""
    whole = backward_of(op)
    half = replace(whole, flops=whole.flops / 2, bytes=whole.bytes / 2)
    return replace(half, name=op.name + "_dgrad"), replace(half, name=op.name + "_wgrad")


# ------------------------------------------------------------------------------- forward


def block_forward(b: PassBuilder, ops: list[OpCost]) -> None:
    """One block (attention or MLP) up to its output collective."""
    job = b.job
    tp, sp = job.layout.tp, job.layout.sequence_parallel
    msg = activation_message_bytes(job)
    if not sp:
        b.run(ops)
        if tp > 1:
            b.collective("tp", msg)
        b.flush()  # a run per block, as without tensor parallelism too
        return
    pre, block = split_at_gemm(ops)
    b.run([sequence_shard(op, tp) for op in pre])
    b.collective("tp", msg, "all_gather")
    b.run(block)
    b.collective("tp", msg, "reduce_scatter")


def embedding_forward(b: PassBuilder) -> None:
    """The input embedding. Each tensor rank looks up the rows of its vocabulary shard (zero
    elsewhere) and the hidden states are summed over the tensor group: an all-reduce, or a
    reduce-scatter into the sequence-parallel region (Megatron-LM ``VocabParallelEmbedding``;
    the trainer's ``embed_forward``)."""
    job = b.job
    b.run(embedding_forward_ops(job))
    if job.layout.tp > 1:
        b.collective("tp", activation_message_bytes(job),
                     "reduce_scatter" if job.layout.sequence_parallel else "allreduce")


def layer_forward(b: PassBuilder) -> None:
    """Forward of one transformer layer: attention, MLP, the last dropout and residual."""
    job = b.job
    block_forward(b, attention_ops(job))
    block_forward(b, mlp_ops(job))
    tp = job.layout.tp if job.layout.sequence_parallel else 1
    b.run([sequence_shard(residual_op(job), tp)])


def head_forward(b: PassBuilder) -> None:
    """LM head: final norm, logits over the vocabulary shard, vocabulary-parallel
    cross-entropy (an all-reduce of 3 per-token values)."""
    job = b.job
    tp = job.layout.tp
    if job.layout.sequence_parallel:
        pre, rest = split_at_gemm(head_forward_ops(job))
        b.run([sequence_shard(op, tp) for op in pre])
        b.collective("tp", activation_message_bytes(job), "all_gather")
        b.run(rest)
    else:
        b.run(head_forward_ops(job))
    if tp > 1:
        b.collective("tp", 3.0 * job.train.micro_batch * job.model.seq_len * 4)


# ------------------------------------------------------------------------------ backward


def column_backward(b: PassBuilder, gemms: list[OpCost]) -> None:
    """Backward of the column-parallel GEMMs of a block (QKV, fc1, the LM head) under
    sequence parallelism: the re-gather of their input beside the input gradients, the
    reduce-scatter of the input gradient beside the weight gradients (Megatron-LM)."""
    msg = activation_message_bytes(b.job)
    halves = [gemm_halves(op) for op in reversed(gemms)]
    gathered = b.start("tp", msg, "all_gather", "tp")
    b.run([dgrad for dgrad, _ in halves])
    b.wait(gathered)
    reduced = b.start("tp", msg, "reduce_scatter", "tp")
    b.run([wgrad for _, wgrad in halves])
    b.wait(reduced)


def block_backward(b: PassBuilder, ops: list[OpCost], selective: bool) -> None:
    """One block's backward, from its output gradient to its input gradient: the ops after
    its column-parallel projections in reverse (the attention core's forward again right
    before its backward, under selective recomputation), the projections, then the ops
    before them (the norm, and the previous block's dropout and residual)."""
    job = b.job
    tp, sp = job.layout.tp, job.layout.sequence_parallel
    msg = activation_message_bytes(job)
    pre, block = split_at_gemm(ops)
    columns = leading_gemms(block)
    core = attention_core_ops(job) if selective else []
    if sp:
        b.collective("tp", msg, "all_gather")
    for op in reversed(block[len(columns):]):
        if core and op == core[-1]:
            b.run(core, recompute=True)
        b.run([backward_of(op)])
    if sp:
        column_backward(b, columns)
        pre = [sequence_shard(op, tp) for op in pre]
    else:
        b.run([backward_of(op) for op in reversed(columns)])
        if tp > 1:
            b.collective("tp", msg)
        b.flush()
    b.run([backward_of(op) for op in reversed(pre)])


def layer_backward(b: PassBuilder, selective: bool) -> None:
    """Backward of one layer in reverse order (the last residual, MLP, attention)."""
    job = b.job
    tp = job.layout.tp if job.layout.sequence_parallel else 1
    b.run([backward_of(sequence_shard(residual_op(job), tp))])
    block_backward(b, mlp_ops(job), selective=False)
    block_backward(b, attention_ops(job), selective)


def embedding_backward(b: PassBuilder) -> None:
    """The input embedding's backward (:func:`fugaku_sim.sim.compute.embedding_backward_ops`,
    its table's gradient included). The forward's all-reduce has no backward; its
    reduce-scatter under sequence parallelism has an all-gather of the gradient (Megatron-LM's
    ``_ReduceScatterToSequenceParallelRegion``)."""
    job = b.job
    if job.layout.tp > 1 and job.layout.sequence_parallel:
        b.collective("tp", activation_message_bytes(job), "all_gather")
    b.run(embedding_backward_ops(job))


def head_backward(b: PassBuilder) -> None:
    """LM head backward; the input gradient of the vocabulary-parallel head is all-reduced
    (reduce-scattered, beside the weight gradient, under sequence parallelism)."""
    job = b.job
    ops = head_forward_ops(job)
    if job.layout.sequence_parallel:
        pre, rest = split_at_gemm(ops)
        columns = leading_gemms(rest)
        b.run([backward_of(op) for op in reversed(rest[len(columns):])])
        column_backward(b, columns)
        b.run([backward_of(sequence_shard(op, job.layout.tp)) for op in reversed(pre)])
        return
    b.run([backward_of(op) for op in reversed(ops)])
    if job.layout.tp > 1:
        b.collective("tp", activation_message_bytes(job))


# ------------------------------------------------------------------------ ZeRO and passes


@dataclass(frozen=True)
class Unit:
    """A piece of a model chunk whose weights ZeRO-3 gathers at once: the embedding, a
    layer or the head; ``parameters`` is one tensor rank's share of them."""

    name: str
    parameters: int
    body: Callable[[PassBuilder], None]
    #: units of one pass with equal keys build equal segments (the layers): built once
    key: tuple[object, ...] | None = None


def unit_parameters(job: Job, stage: int, chunk: ModelChunk) -> tuple[int, int, int]:
    """One tensor rank's parameters of ``chunk``'s (embedding, each layer, head) on
    ``stage``, 0 for a part the chunk lacks; they sum to the chunk's parameters."""
    model, lay = job.model, job.layout
    table = tensor_table(model)
    layer = sum(r.local_size(lay.tp) for r in table.block(0))
    emb = sum(r.local_size(lay.tp) for r in table.part("embedding")) if chunk.first else 0
    head = chunk_parameters(model, lay, stage)[chunk.index] - emb - layer * len(chunk.layers)
    return emb, layer, head


def chunk_units(job: Job, stage: int, chunk: ModelChunk, kind: Literal["F", "B"]) -> list[Unit]:
    """The units of one pass over ``chunk`` in execution order (reversed for a backward)."""
    selective = stage in job.train.selective_stage_set(job.layout.pp)
    emb, layer, head = unit_parameters(job, stage, chunk)
    forward = kind == "F"

    def embedding(b: PassBuilder) -> None:
        embedding_forward(b) if forward else embedding_backward(b)

    def block(b: PassBuilder) -> None:
        layer_forward(b) if forward else layer_backward(b, selective)

    units = [Unit("embedding", emb, embedding)] if chunk.first else []
    units += [Unit(f"layer {i}", layer, block, ("layer", kind, selective)) for i in chunk.layers]
    if chunk.last:
        units.append(Unit("head", head, head_forward if forward else head_backward))
    return units if forward else units[::-1]


def _emit(b: PassBuilder, unit: Unit,
          memo: dict[tuple[object, ...], tuple[list[Segment], int]]) -> None:
    """Append ``unit``'s segments to ``b``: its body run once per key (every layer of a pass
    builds the same segments), the copies' started collectives numbered on from ``b``'s."""
    b.flush()
    if unit.key is None:
        unit.body(b)
        b.flush()
        return
    if unit.key not in memo:
        own = PassBuilder(b.job)
        unit.body(own)
        own.flush()
        memo[unit.key] = (own.out, own.handles)
    segments, handles = memo[unit.key]
    base = b.handles
    b.out += [replace(g, handle=g.handle + base) if g.handle >= 0 else g for g in segments]
    b.handles += handles


def stage_segments(job: Job, stage: int, kind: Literal["F", "B"], chunk: ModelChunk,
                   memo: dict[tuple[object, ...], tuple[list[Segment], int]] | None = None
                   ) -> list[Segment]:
    """Segments of one forward or backward pass of ``chunk`` on ``stage``, with the ZeRO-2
    and ZeRO-3 collectives of the data-parallel group woven in (see the module docstring).
    ``memo`` keeps the layers' segments between calls for one ``job`` (a layer's segments
    do not depend on its stage but through selective recomputation, which its key holds)."""
    memo = {} if memo is None else memo
    b = PassBuilder(job)
    units = chunk_units(job, stage, chunk, kind)
    zero = job.train.zero_stage if job.layout.dp > 1 else 0
    w = element_bytes(job.train.precision)  # weights and gradients at the training precision
    gather = zero == 3
    reduce = zero >= 2 and kind == "B"
    bucket_bytes, filled, reductions = job.train.grad_bucket_MB * 2**20, 0.0, []
    if gather and units:
        b.collective("dp", units[0].parameters * w, "all_gather")
    for i, unit in enumerate(units):
        ahead = (b.start("dp", units[i + 1].parameters * w, "all_gather", "dp")
                 if gather and i + 1 < len(units) else None)
        _emit(b, unit, memo)
        if reduce:
            filled += unit.parameters * w
            if filled >= bucket_bytes or i == len(units) - 1:
                reductions.append(b.start("dp", filled, "reduce_scatter", "dp"))
                filled = 0.0
        if ahead is not None:
            b.wait(ahead)
    for handle in reductions:
        b.wait(handle)
    b.flush()
    return b.out


# ------------------------------------------------------------------------ a pass's price


@dataclass(frozen=True)
class Piece:
    """One slice of a priced pass, from its start (seconds after the pass began)."""

    lane: Literal["compute", "comm"]
    label: str
    category: str
    start: float
    seconds: float


@dataclass(frozen=True)
class PassTiming:
    """A pass priced as one block of time: its length, the seconds charged to each
    breakdown key (they sum to the length), and its pieces for the trace."""

    seconds: float
    charges: dict[str, float]
    pieces: tuple[Piece, ...]


def comm_label(g: Segment) -> str:
    return g.kind if g.op == "allreduce" else f"{g.kind} {OP_LABEL[g.op]}"


def time_pass(segments: list[Segment], category: str, price: Callable[[Segment], float]
              ) -> PassTiming:
    """Price a pass: compute and blocking collectives back to back, started collectives
    one after another on their stream from the moment they are started, and a ``wait``
    holding the compute until its collective ends. Compute is charged to ``category``
    (``recompute`` for selectively recomputed runs), blocking collectives and the exposed
    part of started ones to their group's key (:data:`COMM_CATEGORY`).

    >>> segs = [Segment("compute", seconds=1.0), Segment("dp", nbytes=1, stream="s", handle=0),
    ...         Segment("compute", seconds=2.0), Segment("wait", handle=0)]
    >>> t = time_pass(segs, "compute", lambda g: 2.5)
    >>> t.seconds, dict(t.charges)
    (3.5, {'compute': 3.0, 'dp_comm': 0.5})
    """
    now, charges = 0.0, defaultdict[str, float](float)  # charged in order: the pass sums them
    free: dict[str, float] = {}
    ends: dict[int, tuple[float, str]] = {}
    pieces: list[Piece] = []
    for g in segments:
        if g.kind == "compute":
            cat = "recompute" if g.recompute else category
            pieces.append(Piece("compute", "", cat, now, g.seconds))
            charges[cat] += g.seconds
            now += g.seconds
        elif g.kind == "wait":
            end, cat = ends[g.handle]
            if end > now:
                charges[cat] += end - now
                now = end
        else:
            seconds, cat = price(g), COMM_CATEGORY[g.kind]
            start = max(now, free.get(g.stream, 0.0)) if g.stream else now
            pieces.append(Piece("comm", comm_label(g), cat, start, seconds))
            if g.stream:
                free[g.stream] = start + seconds
                ends[g.handle] = (start + seconds, cat)
            else:
                charges[cat] += seconds
                now += seconds
    # the length as the sum of the charges, each summed in segment order (equal to ``now``
    # but for rounding)
    return PassTiming(sum(charges.values()), dict(charges), tuple(pieces))
