"""The trainer's timed kernels as the simulator prices them, and per-element costs fitted to them.

The ``compute`` benchmark suite times the trainer's own kernels (layer norm, GELU,
cross-entropy, attention) and the parts of whole training passes (a block each way, the head,
the embedding each way) at a tiny and at working shapes. Each row
stands for operations :mod:`fugaku_sim.sim.compute` prices: GEMMs on the GEMM-efficiency
curve, every other operation by its bytes or its elements. :func:`kernel_ops` names those
operations; :func:`simulated_kernel_cost` prices a row's GEMMs and counts its bytes (the
effective-bandwidth fit); :func:`elementwise_costs` fits seconds per element for each
non-GEMM kind and direction.

Kernel names: ``<unit>_<direction>`` with unit ``layernorm``, ``gelu``, ``cross_entropy``,
``attention``, ``block``, ``head`` or ``embedding``, and direction ``fwd``, ``bwd`` or
``fwd_bwd`` (both; :func:`~fugaku_sim.calibrate.fit.combine_forward_backward` adds such rows).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fugaku_sim.calibrate.fit import (
    GemmCurve,
    efficiency_at,
    fit_seconds_per_element,
    tiny_kernel_rows,
    usable_points,
)

DIRECTIONS = ("fwd_bwd", "fwd", "bwd")  # longest first: "x_fwd_bwd" also ends with "_bwd"
ATTENTION_CORE = ("scores", "softmax", "attn_values")  # what the attention kernel times
# the simulated op whose per-element rate a single-op kernel measures
SINGLE_OP = {"layernorm": "layernorm2", "gelu": "gelu", "cross_entropy": "cross_entropy"}


@functools.lru_cache(maxsize=64)
def _kernel_job(b: int, t: int, c: int, f: int, v: int, heads: int) -> Any:
    """A one-layer job of the given shape on the ``local`` profile, one process per node."""
    from fugaku_sim.spec import Layout, ModelSpec, TrainSpec, load_cluster, make_job

    model = ModelSpec(name="kernel", layers=1, hidden=c, heads=heads, ffn_hidden=f,
                      seq_len=t, vocab=v)
    return make_job(load_cluster("local"), model, TrainSpec(global_batch=b, micro_batch=b),
                    Layout(processes_per_node=1))


def _forward_ops(unit: str, row: Mapping[str, Any]) -> list[Any] | None:
    """The simulator's forward ops of one ``unit`` at the row's shape; None if it prices the
    unit as GEMMs only."""
    from fugaku_sim.sim import compute as sim

    if unit in ("block", "attention"):
        c = int(row["C"])
        job = _kernel_job(int(row["B"]), int(row["T"]), c, 4 * c, 32, int(row["heads"]))
        if unit == "block":
            return sim.attention_ops(job) + sim.mlp_ops(job) + [sim.residual_op(job)]
        return [op for op in sim.attention_ops(job) if op.name in ATTENTION_CORE]
    if unit == "head":
        c = int(row["C"])
        return sim.head_forward_ops(_kernel_job(1, int(row["tokens"]), c, 4 * c, int(row["V"]),
                                                1))
    if unit == "embedding":
        return sim.embedding_forward_ops(_embedding_job(row))
    if unit in SINGLE_OP:
        job = _kernel_job(1, int(row["tokens"]), int(row["C"]), int(row["F"]), int(row["V"]), 1)
        ops = sim.attention_ops(job) + sim.mlp_ops(job) + sim.head_forward_ops(job)
        return [next(op for op in ops if op.name == SINGLE_OP[unit])]
    return None


def _embedding_job(row: Mapping[str, Any]) -> Any:
    """The job of a model pass's embedding row: its micro-batch, sequence, hidden size and
    vocabulary (the embedding's ops depend on nothing else)."""
    c = int(row["C"])
    return _kernel_job(int(row["B"]), int(row["T"]), c, 4 * c, int(row["V"]), int(row["heads"]))


def kernel_ops(row: Mapping[str, Any]) -> list[Any] | None:
    """The simulator's ops for what a timed kernel row stands for, in its direction (the
    backward of an op is :func:`fugaku_sim.sim.compute.backward_of` it, and the embedding's
    also accumulates its table's gradient); None for kernels it prices as GEMMs only (linear
    layers)."""
    from fugaku_sim.sim import compute as sim

    name = str(row["kernel"])
    direction = next((d for d in DIRECTIONS if name.endswith(f"_{d}")), None)
    if direction is None:
        return None
    unit = name[: -len(direction) - 1]
    forward = _forward_ops(unit, row)
    if forward is None or direction == "fwd":
        return forward
    backward = (sim.embedding_backward_ops(_embedding_job(row)) if unit == "embedding"
                else [sim.backward_of(op) for op in forward])
    return backward if direction == "bwd" else forward + backward


def gemm_seconds(ops: list[Any], gemm: GemmCurve) -> float:
    """Seconds of the GEMMs among ``ops`` on the fitted GEMM curve (per process)."""
    return sum(op.flops / (gemm.peak_flops * efficiency_at(gemm.points, op.min_dim))
               for op in ops if op.min_dim)


def simulated_kernel_cost(
    row: Mapping[str, Any], gemm: GemmCurve
) -> tuple[float, float] | None:
    """How ``fugaku_sim.sim.compute`` prices what a timed kernel row stands for: (seconds of
    its GEMMs on ``gemm``'s curve, bytes it moves at memory bandwidth). None for kernels it
    prices as GEMMs only (linear layers)."""
    ops = kernel_ops(row)
    if ops is None:
        return None
    return gemm_seconds(ops, gemm), sum(float(op.bytes) for op in ops if not op.min_dim)


def simulated_ops_per_block() -> int:
    """Operations ``fugaku_sim.sim.compute`` prices for one block forward plus backward
    (attention and MLP halves and the second residual, each way)."""
    return len(kernel_ops({"kernel": "block_fwd_bwd", "B": 1, "T": 8, "C": 8, "heads": 2}) or [])


Points = list[tuple[float, float, float]]  # (elements, net seconds, seconds) per timed row


def elementwise_costs(
    kernels: list[dict[str, Any]], gemm: GemmCurve, op_overhead_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per element (per process, every rank busy) of each non-GEMM op kind and
    direction the simulator counts, fitted to the trainer's own kernels at working shapes
    (each net of the same kernel's time at the tiny shape, its fixed cost):

    - ``layernorm``, ``gelu``: the kernels, over [tokens, C] and [tokens, F] elements;
    - ``cross_entropy``: the forward over [tokens, V] and the backward (forward+backward
      minus forward at the same shape) give the split; the level is what remains of the
      trainer's whole head (forward+backward) once its GEMMs and layer norms are priced,
      over its tokens x V logits (the head's GEMMs writing the whole logits run below the
      GEMM curve, and that cost scales with the logits too);
    - ``softmax``: the attention kernels net of their two GEMMs on the fitted GEMM curve,
      over B x heads x T x T scores (scale, mask, exp, normalise, and their backward);
    - ``residual``: what remains of a whole block each way once its GEMMs and the kinds
      above are priced, over the block's residual elements (2 x tokens x C): the glue
      between kernels (bias adds, head split and merge copies, residual adds, gradient
      accumulation) scales with the hidden states;
    - ``embedding``: the embedding each way as a model pass runs it, over its elements (the
      lookups' B x T x C and, backward, the V x C table gradient).

    Also returns a check: the rms relative error of the simulator's block forward, block
    backward, head forward+backward and embedding each way against their timed rows with
    these costs (GEMMs on the curve, ``op_overhead_s`` per op). Empty mappings without the trainer's kernels.
    """
    tiny = tiny_kernel_rows(kernels) if kernels else {}
    if not tiny:
        return {}, {}
    smallest = {k: min(int(q["tokens"]) for q in kernels if q["kernel"] == k) for k in tiny}
    work = [r for r in kernels if int(r["tokens"]) > smallest[str(r["kernel"])]]
    cost: dict[str, float] = {}

    def fit(key: str, points: Points) -> None:
        # the cross-entropy's forward+backward can time below its forward alone at small
        # shapes: a key without a usable point keeps the profile's figure
        if usable_points(points) and (c := fit_seconds_per_element(points)) > 0:
            cost[key] = c

    def priced(ops: list[Any], skip: str = "") -> float:
        return gemm_seconds(ops, gemm) + sum(op.elements * cost.get(op.rate_key, 0.0)
                                             for op in ops if op.kind and op.kind != skip)

    def net_of(kernel: str, counted: Callable[[Any], bool],
               known: Callable[[list[Any]], float]) -> Points:
        """Rows of ``kernel``: elements of the ``counted`` ops, seconds net of the tiny row
        and of what ``known`` prices."""
        pts = []
        for r in work:
            if r["kernel"] == kernel:
                ops = kernel_ops(r) or []
                s = float(r["seconds"])
                pts.append((sum(op.elements for op in ops if counted(op)),
                            s - tiny[kernel] - known(ops), s))
        return pts

    _fit_single_op_kernels(work, tiny, fit)
    for d in ("fwd", "bwd"):  # the model passes' embedding (no GEMM in it)
        fit(f"embedding_{d}", net_of(f"embedding_{d}", lambda op: op.kind == "embedding",
                                     lambda ops: 0.0))
    for d in ("fwd", "bwd"):
        fit(f"softmax_{d}", net_of(f"attention_{d}", lambda op: op.kind == "softmax",
                                   lambda ops: gemm_seconds(ops, gemm)))
    for d in ("fwd", "bwd"):
        fit(f"residual_{d}", net_of(f"block_{d}", lambda op: op.kind == "residual",
                                    lambda ops: priced(ops, "residual")))
    # the cross-entropy as the head runs it: what remains of the head (fwd+bwd) once its
    # GEMMs and layer norms are priced, over its tokens x V logits, split between forward
    # and backward as the single kernels split it (the head's GEMMs write the whole logits,
    # which the GEMM curve's square-ish shapes do not)
    if "head_fwd_bwd" in tiny and {"cross_entropy_fwd", "cross_entropy_bwd"} <= cost.keys():
        pts = net_of("head_fwd_bwd", lambda op: op.rate_key == "cross_entropy_fwd",
                     lambda ops: priced(ops, "cross_entropy"))
        if pts and (both := fit_seconds_per_element(pts)) > 0:
            share = cost["cross_entropy_fwd"] / (cost["cross_entropy_fwd"]
                                                 + cost["cross_entropy_bwd"])
            cost["cross_entropy_fwd"] = both * share
            cost["cross_entropy_bwd"] = both * (1.0 - share)
    check: dict[str, float] = {}
    for unit in ("block_fwd", "block_bwd", "head_fwd_bwd", "embedding_fwd", "embedding_bwd"):
        errs = [(priced(ops) + len(ops) * op_overhead_s) / float(r["seconds"]) - 1.0
                for r in work if r["kernel"] == unit and (ops := kernel_ops(r))]
        if errs:
            check[unit] = float(np.sqrt(np.mean(np.square(errs))))
    return cost, check


def _fit_single_op_kernels(work: list[dict[str, Any]], tiny: dict[str, float],
                           fit: Callable[[str, Points], None]) -> None:
    """Per-element costs of layer norm and GELU (each way) and of the cross-entropy (the
    forward, and the backward as forward+backward minus forward at the same shape)."""
    for kind, dim in (("layernorm", "C"), ("gelu", "F")):
        for d in ("fwd", "bwd"):
            k = f"{kind}_{d}"
            fit(k, [(float(r["tokens"]) * float(r[dim]), float(r["seconds"]) - tiny[k],
                     float(r["seconds"])) for r in work if r["kernel"] == k])
    ce_f = {(r["tokens"], r["V"]): float(r["seconds"]) for r in work
            if r["kernel"] == "cross_entropy_fwd"}
    ce_fb = {(r["tokens"], r["V"]): float(r["seconds"]) for r in work
             if r["kernel"] == "cross_entropy_fwd_bwd"}
    if "cross_entropy_fwd" in tiny:
        fit("cross_entropy_fwd", [(float(t * v), s - tiny["cross_entropy_fwd"], s)
                                  for (t, v), s in ce_f.items()])
    if {"cross_entropy_fwd", "cross_entropy_fwd_bwd"} <= tiny.keys():
        fixed = tiny["cross_entropy_fwd_bwd"] - tiny["cross_entropy_fwd"]
        fit("cross_entropy_bwd", [(float(key[0] * key[1]), ce_fb[key] - ce_f[key] - fixed,
                                   ce_fb[key] - ce_f[key]) for key in ce_f if key in ce_fb])


def optimizer_costs(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per parameter of each optimizer kind (the trainer's norm, clipping and update,
    :func:`fugaku_sim.calibrate.bench.optimizer_ops`), keyed as the simulator looks them up
    (:func:`fugaku_sim.sim.compute.optimizer_rate_key`): fitted through the origin to the
    times at working sizes net of the smallest size's (its fixed cost, which the simulator
    prices per tensor). Empty without optimizer rows."""
    from fugaku_sim.sim.compute import optimizer_rate_key

    cost = {}
    for kind in sorted({str(r["optimizer"]) for r in rows}):
        mine = sorted((int(r["params"]), float(r["seconds"])) for r in rows
                      if r["optimizer"] == kind)
        fixed = mine[0][1]
        points = [(float(n), s - fixed, s) for n, s in mine[1:]]
        if points and (c := fit_seconds_per_element(points)) > 0:
            cost[optimizer_rate_key(kind)] = c
    return cost
