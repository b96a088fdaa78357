"""The trainer's kernels as the simulator prices them, and per-element costs fitted to them."""

from __future__ import annotations

from typing import Any

import pytest

from fugaku_sim.calibrate.fit import GemmCurve
from fugaku_sim.calibrate.kernels import (
    elementwise_costs,
    kernel_ops,
    simulated_kernel_cost,
    simulated_ops_per_block,
)
from fugaku_sim.sim.compute import attention_ops, mlp_ops
from fugaku_sim.sim.flops import layer_forward_flops
from fugaku_sim.spec import ModelSpec
from tests.calibrate.measurements import PEAK

FLAT = GemmCurve(1.0, [(1, 1.0)], 0.0)  # 1 FLOP/s at every size: seconds = FLOPs
BLOCK = {"B": 2, "T": 16, "C": 32, "heads": 4, "tokens": 32}


def test_block_gemms_are_megatrons_layer_flops() -> None:
    """A block's GEMMs (QKV, scores, attention x values, projection, MLP) are a layer's
    forward FLOPs, 24 B T C^2 (1 + T / 6C) (Narayanan et al., SC21); backward twice that."""
    model = ModelSpec(name="k", layers=1, hidden=32, heads=4, ffn_hidden=128, seq_len=16,
                      vocab=32)
    forward = layer_forward_flops(model, 2 * 16)
    assert forward == 24 * 2 * 16 * 32**2 * (1 + 16 / (6 * 32))
    for kernel, factor in (("block_fwd", 1), ("block_bwd", 2), ("block_fwd_bwd", 3)):
        cost = simulated_kernel_cost({**BLOCK, "kernel": kernel}, FLAT)
        assert cost is not None and cost[0] == pytest.approx(factor * forward), kernel


def test_attention_kernel_is_its_two_gemms_and_the_softmax() -> None:
    ops = kernel_ops({**BLOCK, "kernel": "attention_fwd"}) or []
    assert [op.kind for op in ops if op.kind] == ["softmax"]
    cost = simulated_kernel_cost({**BLOCK, "kernel": "attention_fwd"}, FLAT)
    assert cost is not None and cost[0] == 2 * (2 * 2 * 16 * 16 * 32)  # QK^T and AV


def test_single_op_kernels_directions_and_linear() -> None:
    row = {"kernel": "gelu_fwd", "tokens": 64, "C": 16, "F": 64, "V": 100}
    (gelu,) = kernel_ops(row) or []
    assert (gelu.kind, gelu.elements, gelu.rate_key) == ("gelu", 64 * 64, "gelu_fwd")
    assert [op.rate_key for op in kernel_ops({**row, "kernel": "cross_entropy_fwd_bwd"}) or []] \
        == ["cross_entropy_fwd", "cross_entropy_bwd"]
    assert [op.rate_key for op in kernel_ops({**row, "kernel": "layernorm_bwd"}) or []] \
        == ["layernorm_bwd"]
    cost = simulated_kernel_cost(row, FLAT)
    assert cost is not None and cost[0] == 0.0 and cost[1] > 0  # priced by bytes only
    assert kernel_ops({**row, "kernel": "linear_fwd"}) is None  # GEMMs only
    assert kernel_ops({**row, "kernel": "gelu"}) is None  # no direction


def test_ops_per_block_counts_both_directions() -> None:
    from fugaku_sim.calibrate.kernels import _kernel_job

    job = _kernel_job(1, 8, 8, 32, 32, 2)
    assert simulated_ops_per_block() == 2 * (len(attention_ops(job)) + len(mlp_ops(job)) + 1)


def test_elementwise_costs_recover_per_kind_costs() -> None:
    """Kernel rows built from known per-element costs give those costs back, the residual
    (glue) from the whole blocks, the embedding's from its parts of a model pass, and the
    checks are exact."""
    true = {"layernorm_fwd": 1e-9, "layernorm_bwd": 2e-9, "gelu_fwd": 3e-9, "gelu_bwd": 4e-9,
            "cross_entropy_fwd": 0.5e-9, "cross_entropy_bwd": 0.25e-9, "softmax_fwd": 1.5e-9,
            "softmax_bwd": 1e-9, "residual_fwd": 2.5e-9, "residual_bwd": 3e-9,
            "embedding_fwd": 0.7e-9, "embedding_bwd": 1.2e-9}
    fixed = 20e-6

    def cost(ops: list[Any]) -> float:
        gemm = sum(op.flops / PEAK for op in ops if op.min_dim)  # efficiency 1
        return gemm + sum(op.elements * true[op.rate_key] for op in ops if op.kind)

    rows: list[dict[str, Any]] = []
    for tokens, c, v in ((8, 8, 32), (1024, 64, 4096), (512, 256, 4096)):
        big = tokens > 8
        for kind, dim in (("layernorm", c), ("gelu", 4 * c)):
            for d in ("fwd", "bwd"):
                rows.append({"kernel": f"{kind}_{d}", "tokens": tokens, "C": c, "F": 4 * c,
                             "V": v, "seconds": fixed + big * tokens * dim * true[f"{kind}_{d}"]})
        ce_f = big * tokens * v * true["cross_entropy_fwd"]
        rows.append({"kernel": "cross_entropy_fwd", "tokens": tokens, "C": c, "F": 4 * c,
                     "V": v, "seconds": fixed + ce_f})
        rows.append({"kernel": "cross_entropy_fwd_bwd", "tokens": tokens, "C": c, "F": 4 * c,
                     "V": v, "seconds": 2 * fixed + ce_f
                     + big * tokens * v * true["cross_entropy_bwd"]})
    for kernel, shapes in (("attention", ((1, 8, 8, 2), (4, 64, 64, 4))),
                           ("block", ((1, 8, 8, 2), (4, 64, 64, 4), (2, 128, 128, 4)))):
        for b, t, c, heads in shapes:
            for d in ("fwd", "bwd"):
                row = {"kernel": f"{kernel}_{d}", "tokens": b * t, "B": b, "T": t, "C": c,
                       "heads": heads}
                row["seconds"] = fixed + (cost(kernel_ops(row) or []) if t > 8 else 0.0)
                rows.append(row)
    for tokens, c, v in ((8, 8, 32), (256, 64, 2048)):
        row = {"kernel": "head_fwd_bwd", "tokens": tokens, "C": c, "V": v}
        row["seconds"] = fixed + (cost(kernel_ops(row) or []) if tokens > 8 else 0.0)
        rows.append(row)
    for b, t, c, v in ((1, 8, 8, 32), (4, 64, 64, 2048), (2, 128, 128, 4096)):
        for d in ("fwd", "bwd"):  # as a model pass times its embedding
            row = {"kernel": f"embedding_{d}", "tokens": b * t, "B": b, "T": t, "C": c,
                   "heads": 2, "V": v}
            ops = kernel_ops(row) or []  # a fixed cost per op, as a block's (12 ops)
            row["seconds"] = len(ops) * fixed / 12 + (cost(ops) if t > 8 else 0.0)
            rows.append(row)
    curve = GemmCurve(PEAK, [(1, 1.0)], 0.0)  # efficiency 1 at every size
    got, check = elementwise_costs(rows, curve, fixed / 12)  # 12 simulated ops a block
    assert got == pytest.approx(true, rel=1e-6)
    assert check["block_fwd"] < 1e-6 and check["block_bwd"] < 1e-6
    assert check["embedding_fwd"] < 1e-6 and check["embedding_bwd"] < 1e-6
    assert elementwise_costs([], curve, 0.0) == ({}, {})


def test_embedding_rows_are_the_lookups_and_the_table_gradient() -> None:
    """A model pass's embedding forward is the lookup and its dropout over B x T x C; the
    backward adds the [V, C] table's gradient (fugaku_sim.sim.compute.embedding_backward_ops)."""
    row = {"B": 2, "T": 16, "C": 32, "heads": 4, "V": 1000, "tokens": 32}
    forward = kernel_ops({**row, "kernel": "embedding_fwd"}) or []
    backward = kernel_ops({**row, "kernel": "embedding_bwd"}) or []
    assert [op.elements for op in forward] == [2 * 16 * 32] * 2
    assert [op.rate_key for op in backward] == ["embedding_bwd"] * 3
    assert backward[-1].elements == 1000 * 32
    both = kernel_ops({**row, "kernel": "embedding_fwd_bwd"}) or []
    assert both == forward + backward
