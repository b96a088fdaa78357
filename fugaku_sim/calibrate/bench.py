"""Microbenchmarks run under MPI: ``mpiexec -n N python -m fugaku_sim.calibrate.bench SUITE``.

Suites (each prints nothing but writes one JSON file from rank 0):

``compute``  float32 GEMMs over the transformer's shapes, one float64 GEMM, STREAM-like
             bandwidth over array sizes (in place and allocating a new result, as numpy
             expressions do), the cost of tiny operations and the trainer's own kernels.
             Every rank runs the same work at the same time, so a rate is what one process
             gets with all ranks busy; each round of trials also times every case on rank 0
             alone while the others sleep (``lone_seconds``: a lone process, measured in
             the same seconds as the busy one).
``share``    one GEMM with every rank busy, then with half the ranks computing while the
             other half wait in ``Recv`` (do waiting MPI ranks give their core away?).
``comm``     ping-pong between ranks 0 and 1 and ``Allreduce`` over message sizes.

Style of mpi4py's demos: warm up, ``Barrier`` before timing, ``MPI.Wtime``, report from rank 0.
Set ``OPENBLAS_NUM_THREADS=1`` per rank (the launcher in :mod:`fugaku_sim.calibrate.launch`
does), so that a rank is one core's worth of work.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fugaku_sim.io import write_json

# Smallest GEMM dimension of each measured family (full and quick runs).
GEMM_DIMS = (8, 16, 32, 64, 128, 256, 512, 1024)
GEMM_DIMS_QUICK = (16, 64, 256)
STREAM_WORDS = tuple(4**k for k in range(6, 13))  # 4096 .. 16.8M float32 (16 KB .. 64 MB)
STREAM_WORDS_QUICK = (4**6, 4**9, 4**11)
MESSAGE_BYTES = tuple(8 * 4**k for k in range(0, 12))  # 8 B .. 32 MB
MESSAGE_BYTES_QUICK = (8, 8 * 4**4, 8 * 4**8)


def gemm_shapes(min_dim: int, quick: bool = False) -> list[tuple[int, int, int]]:
    """(m, k, n) shapes whose smallest side is ``min_dim``, as a transformer layer has them.

    With ``a`` = 4 x min_dim capped at 2048: ``(a, d, a)`` is a forward projection of ``a``
    tokens from ``d`` channels, ``(d, a, a)`` a weight gradient (the token dimension is
    reduced), ``(a, a, d)`` an input gradient. Quick runs keep only the forward shape.

    >>> gemm_shapes(64)
    [(256, 64, 256), (64, 256, 256), (256, 256, 64)]
    """
    a = min(4 * min_dim, 2048) if min_dim < 2048 else min_dim
    shapes = [(a, min_dim, a), (min_dim, a, a), (a, a, min_dim)]
    return shapes[:1] if quick else shapes


TRIALS = 5  # timed loops per measurement; the median is kept
COMPUTE_SECTIONS = ("gemm", "stream", "tiny_ops", "kernels", "optimizer")

Clock = Callable[[], float]

# The compute suite times its kernels on the process's CPU clock: a rank is one
# single-threaded process (the launcher sets one BLAS thread), so on a dedicated machine its
# CPU time is its wall time, while on a shared one the time the scheduler gives to other
# work is left out: the kernel's speed, not its neighbours' (every calibration of the same
# machine then agrees). What sharing costs is measured on the wall clock by the ``share``
# and ``comm`` suites, where it is the thing measured.
COMPUTE_CLOCK: Clock = time.process_time


def _wall() -> float:
    from mpi4py import MPI

    return float(MPI.Wtime())


def _loop_s(comm: Any, op: Callable[[], object], reps: int, clock: Clock = _wall) -> float:
    """Seconds per call over ``reps`` calls on ``clock`` (the wall clock by default), after a
    ``Barrier`` (every rank starts together)."""
    comm.Barrier()
    t0 = clock()
    for _ in range(reps):
        op()
    return (clock() - t0) / reps


def _reps_for(comm: Any, op: Callable[[], object], loop_budget_s: float) -> int:
    """Calls per timed loop of about ``loop_budget_s``, the same on every rank (agreed on the
    slowest rank's estimate); the first call is a warm-up (page faults, BLAS set-up)."""
    from mpi4py import MPI

    op()
    once = max(_loop_s(comm, op, 1), 1e-7)
    once = comm.allreduce(once, op=MPI.MAX)
    return max(1, int(loop_budget_s / once))


def time_op_s(comm: Any, op: Callable[[], object], budget_s: float,
              trials: int = TRIALS) -> float:
    """Seconds per call of ``op`` with every rank running it at once: the median of
    ``trials`` timed loops of about ``budget_s / trials`` each (mpi4py demo style). The
    median, not the best loop: a training run's step is timed by its median too (validate),
    on a machine whose speed jitters, so both sides see the same typical machine."""
    reps = _reps_for(comm, op, budget_s / trials)
    return statistics.median(_loop_s(comm, op, reps) for _ in range(trials))


# Seconds each named part of a call took, summed over the calls since the previous read (which
# resets the sums): a case whose call times parts of itself.
Phases = Callable[[], dict[str, float]]


class Case(NamedTuple):
    """One measurement: its row (what was timed), the call and its share of the budget. With
    ``phases``, the call times parts of itself and the case gives one row per part instead
    (the part's name as the row's ``kernel``, its ``seconds`` per call)."""

    row: dict[str, Any]
    op: Callable[[], object]
    share: float = 1.0
    phases: Phases | None = None


def _case_loop_s(comm: Any, case: Case, reps: int, clock: Clock) -> dict[str, float]:
    """One timed loop of ``case`` on ``clock``: seconds per call, of the whole call (key
    ``""``) or of each of its parts (which time themselves on :data:`COMPUTE_CLOCK`)."""
    if case.phases is None:
        return {"": _loop_s(comm, case.op, reps, clock)}
    case.phases()  # drop what earlier calls (the warm-up, the sizing) accumulated
    _loop_s(comm, case.op, reps, clock)
    return {part: seconds / reps for part, seconds in case.phases().items()}


LONE_POLL_S = 0.002  # how often a resting rank looks for its peer's word


def _rest_until_told(comm: Any, source: int, tag: int) -> None:
    """Sleep until ``source`` sends ``tag``: a resting rank, not one in an MPI wait (which
    polls and keeps its core busy)."""
    done = comm.irecv(source=source, tag=tag)
    while not done.Test():
        time.sleep(LONE_POLL_S)
    done.wait()


def _lone_round(comm: Any, cases: list[Case], reps: list[int], clock: Clock,
                samples: list[dict[str, list[float]]]) -> None:
    """One timed loop of every case on rank 0 alone while the other ranks rest: they sleep
    (not in an MPI wait, which polls and keeps its core busy) until rank 0 says it is done.
    Rank 0 appends its loops to ``samples``."""
    from mpi4py import MPI

    comm.Barrier()
    if comm.Get_rank() == 0:
        for i, c in enumerate(cases):
            for part, seconds in _case_loop_s(MPI.COMM_SELF, c, reps[i], clock).items():
                samples[i].setdefault(part, []).append(seconds)
        for peer in range(1, comm.Get_size()):
            comm.send(None, dest=peer, tag=11)
    else:
        _rest_until_told(comm, 0, 11)


def time_cases(comm: Any, cases: list[Case], budget_s: float,
               trials: int = TRIALS, clock: Clock = COMPUTE_CLOCK,
               lone: bool = False) -> list[dict[str, Any]]:
    """Time every case, interleaved: ``trials`` rounds, each running one timed loop of every
    case in turn, then each case's median loop. A slow drift of the machine's speed (a
    neighbour's job starting) then touches every case alike instead of the few measured
    while it lasted, so the shapes a fit compares keep their ratios. A case's loop is sized
    to ``share x budget_s / trials``. Returns each row (one per part of a case with
    ``phases``) with ``seconds`` (the median over ranks of each rank's median loop) and
    ``seconds_per_rank``.

    With ``lone`` (and more than one rank), every round also times each case on rank 0
    alone, the other ranks resting, and the rows carry ``lone_seconds`` (rank 0's median
    loop): how a lone process compares with one of several busy ones, measured in the same
    seconds as the busy loops, so a drift of the machine's speed (measured at +-15% over
    10-s windows on a shared 2-core VM) does not enter the ratio."""
    reps = [_reps_for(comm, c.op, c.share * budget_s / trials) for c in cases]
    samples: list[dict[str, list[float]]] = [{} for _ in cases]
    alone: list[dict[str, list[float]]] = [{} for _ in cases]
    lone = lone and comm.Get_size() > 1
    for _ in range(trials):
        for i, c in enumerate(cases):
            for part, seconds in _case_loop_s(comm, c, reps[i], clock).items():
                samples[i].setdefault(part, []).append(seconds)
        if lone:
            _lone_round(comm, cases, reps, clock, alone)
    rows = []
    for c, mine, solo in zip(cases, samples, alone):
        for part, values in mine.items():  # the same parts in the same order on every rank
            per_rank = [float(x) for x in comm.allgather(statistics.median(values))]
            row = {**c.row, **({"kernel": part} if part else {}),
                   "seconds": statistics.median(per_rank), "seconds_per_rank": per_rank}
            if lone:
                row["lone_seconds"] = float(comm.bcast(
                    statistics.median(solo[part]) if comm.Get_rank() == 0 else None, root=0))
            rows.append(row)
    return rows


def gather_rates(comm: Any, seconds: float) -> list[float]:
    """Every rank's seconds per call, gathered to all."""
    return [float(s) for s in comm.allgather(seconds)]


def gemm_cases(quick: bool, seed: int) -> list[Case]:
    """float32 GEMMs over :func:`gemm_shapes` of every dimension, plus one float64 GEMM."""
    rng = np.random.default_rng(seed)
    dims = GEMM_DIMS_QUICK if quick else GEMM_DIMS
    shapes = [(d, s, np.float32) for d in dims for s in gemm_shapes(d, quick)]
    shapes.append((512, (512, 512, 512), np.float64))
    cases: list[Case] = []
    for min_dim, (m, k, n), dtype in shapes:
        a = rng.standard_normal((m, k)).astype(dtype)  # (m, k)
        b = rng.standard_normal((k, n)).astype(dtype)  # (k, n)
        out = np.empty((m, n), dtype)  # (m, n)
        row = {"section": "gemm", "m": m, "k": k, "n": n, "min_dim": min_dim,
               "dtype": np.dtype(dtype).name, "flops": 2.0 * m * k * n}
        cases.append(Case(row, functools.partial(np.matmul, a, b, out=out)))
    return cases


def stream_cases(quick: bool) -> list[Case]:
    """STREAM-like ``c = a + b`` (12 bytes a float32 element): ``inplace`` into a reused
    array, and ``alloc`` into a fresh one, as a numpy expression does."""
    cases: list[Case] = []
    for words in STREAM_WORDS_QUICK if quick else STREAM_WORDS:
        a = np.ones(words, np.float32)
        b = np.ones(words, np.float32)
        c = np.empty(words, np.float32)
        ops: dict[str, Callable[[], object]] = {
            "inplace": functools.partial(np.add, a, b, out=c),
            "alloc": functools.partial(np.add, a, b),  # a fresh result array, as a + b
        }
        for kind, op in ops.items():
            cases.append(Case({"section": "stream", "kind": kind, "bytes": 12.0 * words,
                               "array_bytes": 4.0 * words}, op))
    return cases


def tiny_cases() -> list[Case]:
    """Operations on 8-element arrays: what any numpy call costs (half the budget each)."""
    x = np.ones(8, np.float32)
    y = np.empty(8, np.float32)
    w = np.ones((8, 8), np.float32)
    ops: dict[str, Callable[[], object]] = {
        "add_out": lambda: np.add(x, x, out=y),
        "add_new": lambda: x + x,
        "multiply_new": lambda: x * x,
        "exp_new": lambda: np.exp(x),
        "sum": lambda: x.sum(),
        "matmul_8": lambda: w @ w,
        "reshape_transpose": lambda: w.reshape(2, 4, 8).transpose(1, 0, 2),
    }
    return [Case({"section": "tiny_ops", "op": name}, op, 0.5) for name, op in ops.items()]


# Kernels of the trainer (fugaku_sim.train.layers) other than its linear layers, timed at a
# tiny shape (their fixed cost per call) and at working shapes (tokens, C, F = 4C, V).
KERNEL_SHAPES = ((8, 8, 32, 32), (256, 64, 256, 4096), (1024, 256, 1024, 4096))
KERNEL_SHAPES_QUICK = ((8, 8, 32, 32), (1024, 64, 256, 4096))
# Attention (B, T, C, heads): tiny, then working shapes.
ATTENTION_SHAPES = ((1, 8, 8, 2), (4, 256, 128, 4))
ATTENTION_SHAPES_QUICK = ((1, 8, 8, 2), (4, 64, 64, 4))


def kernel_ops(tokens: int, c: int, f: int, v: int) -> dict[str, Callable[[], object]]:
    """The trainer's layer norm, GELU and cross-entropy, forward and backward, on arrays of
    [tokens, C], [tokens, F] and [tokens, V] (cross-entropy as the trainer calls it, reusing
    the logits' memory); at the tiny shape also a linear layer (its fixed cost)."""
    from fugaku_sim.train import layers as L

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, tokens, c), dtype=np.float32)  # [B, T, C]
    w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
    h = rng.standard_normal((1, tokens, f), dtype=np.float32)  # [B, T, F]
    logits = rng.standard_normal((1, tokens, v), dtype=np.float32)  # [B, T, V]
    targets = rng.integers(0, v, (1, tokens))
    _, ln_cache = L.layernorm_forward(x, w, b)
    _, gelu_cache = L.gelu_forward(h)

    def ce_forward() -> object:
        return L.cross_entropy_forward(logits, targets, overwrite=True)

    def ce_forward_backward() -> object:
        _, cache = L.cross_entropy_forward(logits, targets, overwrite=True)
        return L.cross_entropy_backward(1.0, cache)

    ops: dict[str, Callable[[], object]] = {
        "layernorm_fwd": functools.partial(L.layernorm_forward, x, w, b),
        "layernorm_bwd": functools.partial(L.layernorm_backward, x, ln_cache),
        "gelu_fwd": functools.partial(L.gelu_forward, h),
        "gelu_bwd": functools.partial(L.gelu_backward, h, gelu_cache),
        "cross_entropy_fwd": ce_forward,
        "cross_entropy_fwd_bwd": ce_forward_backward,
    }
    if tokens <= 8:
        wl = rng.standard_normal((c, c), dtype=np.float32)
        ops["linear_fwd"] = functools.partial(L.linear_forward, x, wl, b)
    return ops


MODEL_PHASES = ("embedding_fwd", "block_fwd", "head_fwd_bwd", "block_bwd", "embedding_bwd")


def model_pass(b: int, t: int, c: int, heads: int, v: int, layers: int,
               ) -> tuple[Callable[[], object], Phases]:
    """One training pass of a whole model through the trainer's own functions, as a
    one-stage step runs a micro-batch of [B = b, T = t] tokens: embedding, ``layers`` blocks
    forward (every block's activations kept), final layer norm, tied head and cross-entropy
    forward and backward, the blocks backward (gradients accumulated into the parameters),
    the embedding's backward. The pass times its parts as it runs, so each kernel runs with
    the working set a step has around it (the head's logits evict the blocks' activations
    between their forward and backward), not looping hot on one shape. Returns the pass and
    its :data:`Phases`, keyed by :data:`MODEL_PHASES`: seconds per block for ``block_*``,
    per pass for the others."""
    from fugaku_sim.spec import ModelSpec
    from fugaku_sim.train import model as M
    from fugaku_sim.train.params import rank_share

    spec = ModelSpec(name="bench", layers=layers, hidden=c, heads=heads, seq_len=t, vocab=v)
    params = M.init_params(spec, 0)
    share = rank_share(spec)
    grads = {k: np.zeros_like(w) for k, w in params.items()}
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, v, (b, t))  # [B, T]
    targets = rng.integers(0, v, (b, t))  # [B, T]
    clock = COMPUTE_CLOCK
    acc = dict.fromkeys(MODEL_PHASES, 0.0)

    def step() -> None:
        marks = [clock()]
        x, emb = M.embed_forward(params, spec, tokens)  # [B, T, C]
        marks.append(clock())
        caches = []
        for i in range(layers):
            x, cache = M.block_forward(params, spec, i, x, share)
            caches.append(cache)
        marks.append(clock())
        _, head = M.head_forward(params, spec, x, targets)
        d = M.head_backward(1.0, head, grads, params)
        marks.append(clock())
        for i in reversed(range(layers)):
            d = M.block_backward(d, caches[i], grads)
        marks.append(clock())
        M.embed_backward(d, emb, grads, spec)
        marks.append(clock())
        for phase, start, end in zip(MODEL_PHASES, marks, marks[1:]):
            acc[phase] += (end - start) / (layers if phase.startswith("block_") else 1)

    def phases() -> dict[str, float]:
        out = dict(acc)
        acc.update(dict.fromkeys(MODEL_PHASES, 0.0))
        return out

    return step, phases


def attention_ops(b: int, t: int, c: int, heads: int) -> dict[str, Callable[[], object]]:
    """The trainer's causal attention forward and backward on qkv [B, T, 3C]."""
    from fugaku_sim.train import layers as L

    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((b, t, 3 * c), dtype=np.float32)  # [B, T, 3C]
    y, cache = L.attention_forward(qkv, heads)
    return {"attention_fwd": functools.partial(L.attention_forward, qkv, heads),
            "attention_bwd": functools.partial(L.attention_backward, y, cache)}


OPTIMIZERS = ("adamw", "adam", "sgd")  # TrainSpec.optimizer's kinds
OPTIMIZER_PARAMS = (64, 2**17, 2**20, 2**22)  # flat parameters updated (tiny first)
OPTIMIZER_PARAMS_QUICK = (64, 2**18)


def optimizer_ops(kind: str, params: int) -> Callable[[], object]:
    """The trainer's optimizer region over a flat range of ``params`` parameters: the squared
    gradient norm, the clipping scale, then :class:`Optimizer`'s update with weight decay over
    the whole range (``Trainer.clip_and_update``, without its one-value all-reduce), plus
    one copy that restores the gradient the update may overwrite (a step starts afresh)."""
    from fugaku_sim.spec import TrainSpec
    from fugaku_sim.train.optimizer import Optimizer

    opt = Optimizer(TrainSpec(global_batch=1, optimizer=kind), params)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(params, dtype=np.float32)
    fresh = rng.standard_normal(params, dtype=np.float32)
    grad = fresh.copy()
    everything = [(0, params)]  # decay ranges

    def update() -> None:
        np.copyto(grad, fresh)
        float(np.dot(grad, grad))  # the norm, as the trainer computes it
        np.multiply(grad, np.float32(0.5), out=grad)  # clipping
        opt.step(weights, grad, everything, 1e-4, 1)

    return update


# Whole models (B, T, C, heads, V, layers) whose passes give the block, head and embedding
# rows: the tiny shape first, then a ladder of working shapes. The ladder is generic, not the
# validation runs' shapes (their held-out set checks the fit between the rungs).
MODEL_SHAPES = ((1, 8, 8, 2, 32, 2), (1, 64, 32, 2, 1024, 2), (4, 96, 96, 4, 4096, 2),
                (2, 256, 160, 4, 12288, 2), (4, 128, 256, 8, 8192, 2))
MODEL_SHAPES_QUICK = ((1, 8, 8, 2, 32, 2), (4, 96, 96, 4, 4096, 2))


def kernel_cases(quick: bool) -> list[Case]:
    """:func:`kernel_ops`, :func:`attention_ops`, :func:`model_pass` and
    :func:`optimizer_ops` at each shape (empty without the trainer). The units the fits rest
    on (whole model passes, the optimizer) get more of the budget than the single kernels."""
    try:
        kernel_ops(8, 8, 32, 32)
    except ImportError:
        return []
    cases = []
    for tokens, c, f, v in KERNEL_SHAPES_QUICK if quick else KERNEL_SHAPES:
        for name, op in kernel_ops(tokens, c, f, v).items():
            row = {"kernel": name, "tokens": tokens, "C": c, "F": f, "V": v}
            cases.append(Case({"section": "kernels", **row}, op, 0.5))
    for b, t, c, heads in ATTENTION_SHAPES_QUICK if quick else ATTENTION_SHAPES:
        for name, op in attention_ops(b, t, c, heads).items():
            row = {"kernel": name, "tokens": b * t, "B": b, "T": t, "C": c, "heads": heads}
            cases.append(Case({"section": "kernels", **row}, op, 0.5))
    for b, t, c, heads, v, layers in MODEL_SHAPES_QUICK if quick else MODEL_SHAPES:
        step, phases = model_pass(b, t, c, heads, v, layers)
        row = {"tokens": b * t, "B": b, "T": t, "C": c, "heads": heads, "V": v,
               "layers": layers}
        cases.append(Case({"section": "kernels", **row}, step, 2.0, phases=phases))
    for kind in OPTIMIZERS:
        for params in OPTIMIZER_PARAMS_QUICK if quick else OPTIMIZER_PARAMS:
            cases.append(Case({"section": "optimizer", "optimizer": kind, "params": params},
                              optimizer_ops(kind, params)))
    return cases


SHARE_SHAPE = (512, 256, 512)  # ~134 MFLOP: long enough that call overhead is negligible


def bench_share(comm: Any, budget_s: float) -> dict[str, Any]:
    """Per-process GEMM time with all ranks computing, then with the lower half computing
    while the upper half block in ``Recv`` (MPICH polls while it waits: a waiting rank may
    keep its core busy, which matters when ranks outnumber cores)."""
    m, k, n = SHARE_SHAPE
    a = np.ones((m, k), np.float32)
    b = np.ones((k, n), np.float32)
    out = np.empty((m, n), np.float32)
    op = functools.partial(np.matmul, a, b, out=out)
    # the median: how the scheduler shares cores is the thing measured, not a disturbance
    all_busy = gather_rates(comm, time_op_s(comm, op, budget_s))
    rank, size = comm.Get_rank(), comm.Get_size()
    half = size // 2
    busy = rank < max(half, 1)
    sub = comm.Split(0 if busy else 1, rank)
    waiting_s = float("nan")
    if busy:
        waiting_s = time_op_s(sub, op, budget_s)
        if rank + half < size and half:
            comm.send(None, dest=rank + half, tag=7)
    elif half:
        comm.recv(source=rank - half, tag=7)
    sub.Free()
    half_busy = [s for s in comm.allgather(waiting_s) if s == s]
    result: dict[str, Any] = {
        "m": m, "k": k, "n": n, "flops": 2.0 * m * k * n, "ranks": size,
        # the slowest rank: synchronous work finishes when the last rank does
        "all_busy_seconds": max(all_busy),
        "half_busy_seconds": max(half_busy),
    }
    if half:
        result.update(_busy_vs_half_asleep(comm, op, budget_s))
    return result


@contextlib.contextmanager
def _own_core(index: int) -> Iterator[None]:
    """Run the block on one core of those this process may use (the ``index``-th, cyclic),
    then give the process its cores back: when half the ranks fall asleep, the scheduler may
    leave the busy ones sharing a core for a while, and the reference of one process per
    core would be slower than it is (a share of 0.67 at twice the ranks was measured that
    way, more than the two cores hold). Without ``sched_setaffinity`` (not Linux), as is."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[index % len(cores)]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def _busy_vs_half_asleep(comm: Any, op: Callable[[], object], budget_s: float,
                         trials: int = TRIALS) -> dict[str, float]:
    """The same GEMM loop with every rank busy, then with the upper half of the ranks asleep
    (not in an MPI wait, which polls), in alternating trials: the ratio of the two is the
    core share of an oversubscribed rank measured in the same seconds, so the machine's
    drift between two jobs (which moved the share measured across them from 0.30 to 0.59
    on one quiet 2-core machine) stays out of it. Returns the slowest rank's median loop of
    each, ``interleaved_all_busy_seconds`` and ``half_asleep_seconds``."""
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    half = size // 2
    reps = _reps_for(comm, op, budget_s / trials)
    busy, asleep = [], []
    for _ in range(trials):
        busy.append(_loop_s(comm, op, reps))
        comm.Barrier()
        if rank < half:
            with _own_core(rank):
                asleep.append(_loop_s(MPI.COMM_SELF, op, reps))
            if rank + half < size:
                comm.send(None, dest=rank + half, tag=12)
        else:
            _rest_until_told(comm, rank - half, 12)
    mine = statistics.median(asleep) if asleep else float("nan")
    return {"interleaved_all_busy_seconds": max(gather_rates(comm, statistics.median(busy))),
            "half_asleep_seconds": max(s for s in gather_rates(comm, mine) if s == s)}


def bench_pingpong(comm: Any, quick: bool, budget_s: float) -> list[dict[str, Any]]:
    """One-way time of a message between ranks 0 and 1 (half the round trip)."""
    from mpi4py import MPI

    rank = comm.Get_rank()
    pair = comm.Split(0 if rank < 2 else 1, rank)
    rows = []
    for nbytes in MESSAGE_BYTES_QUICK if quick else MESSAGE_BYTES:
        buf = np.zeros(max(nbytes // 4, 1), np.float32)
        if rank < 2:
            peer = 1 - rank

            def trip(reps: int, buf: np.ndarray = buf, peer: int = peer) -> float:
                pair.Barrier()
                t0 = MPI.Wtime()
                for _ in range(reps):
                    if rank == 0:
                        pair.Send(buf, dest=peer)
                        pair.Recv(buf, source=peer)
                    else:
                        pair.Recv(buf, source=peer)
                        pair.Send(buf, dest=peer)
                return (MPI.Wtime() - t0) / (2 * reps)

            trip(2)
            once = pair.allreduce(trip(1), op=MPI.MAX)
            reps = max(2, int(budget_s / 3 / (2 * once)))
            one_way = statistics.median(pair.allreduce(trip(reps), op=MPI.MAX) for _ in range(3))
            rows.append({"bytes": float(buf.nbytes), "seconds": one_way})
        comm.Barrier()
    pair.Free()
    return rows


def bench_allreduce(comm: Any, quick: bool, budget_s: float) -> list[dict[str, Any]]:
    """``Allreduce`` (sum) of float32 buffers over sizes; the slowest rank's time."""
    rows = []
    for nbytes in MESSAGE_BYTES_QUICK if quick else MESSAGE_BYTES:
        send = np.ones(max(nbytes // 4, 1), np.float32)
        recv = np.empty_like(send)
        op = functools.partial(comm.Allreduce, send, recv)
        per_rank = gather_rates(comm, time_op_s(comm, op, budget_s))
        rows.append({"bytes": float(send.nbytes), "ranks": comm.Get_size(),
                     "seconds": max(per_rank)})
    return rows


def bench_pair_allreduce(comm: Any, quick: bool, budget_s: float) -> list[dict[str, Any]]:
    """``Allreduce`` within pairs of consecutive ranks ({0, 1}, {2, 3}, ...), every pair at
    once: the tensor- or data-parallel groups of two that a 4-rank layout has."""
    pair = comm.Split(comm.Get_rank() // 2, comm.Get_rank())
    rows = []
    for nbytes in MESSAGE_BYTES_QUICK if quick else MESSAGE_BYTES[::2]:
        send = np.ones(max(nbytes // 4, 1), np.float32)
        recv = np.empty_like(send)
        op = functools.partial(pair.Allreduce, send, recv)
        per_rank = gather_rates(comm, time_op_s(comm, op, budget_s))
        rows.append({"bytes": float(send.nbytes), "ranks": 2, "concurrent_groups":
                     comm.Get_size() // 2, "seconds": max(per_rank)})
    pair.Free()
    return rows


#: the compute between two synchronisations: forward passes of the trainer's own transformer
#: blocks at this shape (layers, hidden, heads, seq_len, vocab; micro-batch SYNC_BATCH), so a
#: rank that gives up its core mid-step leaves the working set a step has
SYNC_BLOCKS = (4, 64, 4, 64, 2048)
SYNC_BATCH = 2
SYNC_CHUNKS = (1, 2, 4)  # block passes between two synchronisations
SYNC_CHUNKS_QUICK = (1, 2)
SYNC_BYTES = (8, 32768, 262144, 1048576)  # all-reduced message sizes
SYNC_BYTES_QUICK = (8, 262144)
SYNC_TRIALS = 3


def _block_passes() -> Callable[[int], None]:
    """``passes(n)``: ``n`` forward passes of the trainer's transformer blocks (cycling over
    the layers of a :data:`SYNC_BLOCKS` model), as a step runs them between two tensor-
    parallel all-reduces."""
    from fugaku_sim.calibrate.probe import block_passes

    return block_passes(SYNC_BLOCKS, SYNC_BATCH)


def bench_sync_after_compute(comm: Any, quick: bool, budget_s: float) -> list[dict[str, Any]]:
    """What an all-reduce between pairs of ranks costs when each rank computes between
    them, as tensor parallelism does: per iteration, ``calls`` forward passes of the
    trainer's transformer blocks then an ``Allreduce`` of ``bytes`` in the pair, against the
    same passes without it (the slowest rank's time per iteration). With more ranks than
    cores a rank reaching the all-reduce may find its partner descheduled in mid-compute,
    and a message larger than MPICH's shared-memory cells needs both ranks running for
    every hand-over: the cost is set by the scheduler's time slices more than by the link,
    and by what a switch of process costs the one that resumes. That depends on the work
    around it: between loops of one 256-cube GEMM the all-reduce of 32 KiB cost 0.10 ms,
    between the trainer's blocks 0.20-0.25 ms (4 ranks on 2 cores, the same minute), as
    the trainer's own all-reduces at gpt-micro tp 2 x dp 2 (0.44 ms median wait, 0.33 ms
    of it the peer's compute)."""
    from mpi4py import MPI

    pair = comm.Split(comm.Get_rank() // 2, comm.Get_rank())
    passes = _block_passes()
    rows = []
    for nbytes in SYNC_BYTES_QUICK if quick else SYNC_BYTES:
        one = np.ones(max(nbytes // 4, 1), np.float32)
        red = np.empty_like(one)
        for calls in SYNC_CHUNKS_QUICK if quick else SYNC_CHUNKS:
            def work(sync: bool, calls: int = calls, one: np.ndarray = one,
                     red: np.ndarray = red) -> None:
                passes(calls)
                if sync:
                    pair.Allreduce(one, red)

            # SYNC_TRIALS alternating loops without and with the all-reduce; the median of
            # each (the scheduler's luck varies from one loop to the next)
            samples: dict[bool, list[float]] = {False: [], True: []}
            reps = 0
            for _ in range(SYNC_TRIALS):
                for sync in (False, True):
                    if not reps:
                        work(sync)
                        comm.Barrier()
                        t0 = MPI.Wtime()
                        work(sync)
                        once = comm.allreduce(max(MPI.Wtime() - t0, 1e-6), op=MPI.MAX)
                        reps = max(5, int(budget_s / SYNC_TRIALS / once))
                    comm.Barrier()
                    t0 = MPI.Wtime()
                    for _ in range(reps):
                        work(sync)
                    samples[sync].append(comm.allreduce((MPI.Wtime() - t0) / reps,
                                                        op=MPI.MAX))
            times = {k: statistics.median(v) for k, v in samples.items()}
            rows.append({"bytes": float(one.nbytes), "block_passes": calls, "ranks": 2,
                         "concurrent_groups": comm.Get_size() // 2,
                         "compute_seconds": times[False], "with_sync_seconds": times[True],
                         "seconds": max(times[True] - times[False], 0.0),
                         "trials": SYNC_TRIALS})
    pair.Free()
    return rows


def run_suite(suite: str, quick: bool, budget_fraction: float = 1.0) -> dict[str, Any]:
    """Run one suite on ``COMM_WORLD``; every rank returns the same mapping. With
    ``budget_fraction`` < 1 its timed loops are that fraction of their usual length (the
    compute suite runs in two halves of a calibration: measure.py)."""
    import mpi4py
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    # seconds of timed work per measurement
    budget = (0.04 if quick else 0.25) * budget_fraction
    started = time.time()
    out: dict[str, Any] = {
        "suite": suite, "ranks": comm.Get_size(), "quick": quick,
        "mpi_library": MPI.Get_library_version().splitlines()[0].strip(),
        "mpi4py": mpi4py.__version__,
    }
    if suite == "compute":
        # one interleaved pool (see time_cases), rows sorted back into their sections
        cases = (gemm_cases(quick, comm.Get_rank()) + stream_cases(quick) + tiny_cases()
                 + kernel_cases(quick))
        for section in COMPUTE_SECTIONS:
            out[section] = []
        for row in time_cases(comm, cases, budget, lone=True):
            out[row.pop("section")].append(row)
        out["clock"] = "process CPU time"
        out["lone"] = "interleaved" if comm.Get_size() > 1 else "not measured (one rank)"
    elif suite == "share":
        out["share"] = bench_share(comm, budget * 2)
    elif suite == "comm":
        if comm.Get_size() >= 2:
            out["pingpong"] = bench_pingpong(comm, quick, budget)
        out["allreduce"] = bench_allreduce(comm, quick, budget)
        if comm.Get_size() % 2 == 0:
            out["sync_after_compute"] = bench_sync_after_compute(comm, quick, budget)
        if comm.Get_size() >= 4 and comm.Get_size() % 2 == 0:
            out["pair_allreduce"] = bench_pair_allreduce(comm, quick, budget)
    else:
        raise ValueError(f"unknown suite {suite!r}")
    out["wall_s"] = time.time() - started
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["compute", "share", "comm"])
    parser.add_argument("--out", type=Path, required=True, help="JSON file rank 0 writes")
    parser.add_argument("--quick", action="store_true", help="few sizes, short timings (CI)")
    parser.add_argument("--budget-fraction", type=float, default=1.0,
                        help="timed loops this fraction of their usual length")
    args = parser.parse_args(argv)
    from mpi4py import MPI

    result = run_suite(args.suite, args.quick, args.budget_fraction)
    if MPI.COMM_WORLD.Get_rank() == 0:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
