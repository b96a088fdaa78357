"""Small machines and jobs the simulator tests share (built in code, not from profiles)."""

from __future__ import annotations

from typing import Any

from fugaku_sim.spec import ClusterSpec, Layout, ModelSpec, TrainSpec, load_cluster, make_job
from fugaku_sim.spec.job import Job


def small_torus(
    dims: tuple[int, ...] = (4, 4, 4), link_bw_GBps: float = 6.8, **node: Any
) -> ClusterSpec:
    """A Fugaku-like node on a small 3-D torus, one virtual axis per dimension."""
    base = load_cluster("fugaku").model_dump()
    names = ["X", "Y", "Z", "W"][: len(dims)]
    base["name"] = "torus-" + "x".join(map(str, dims))
    base["interconnect"]["dims"] = [
        {"name": n, "size": s, "wrap": True} for n, s in zip(names, dims)
    ]
    base["allocation"] = {
        "max_nodes": 1,
        "virtual_axes": [[n] for n in names],
        "unit_shape": [1] * len(dims),
        "shape_dims_allowed": [len(dims)],
    }
    n = 1
    for s in dims:
        n *= s
    base["allocation"]["max_nodes"] = n
    # figures given here are no longer assumed: their ranges go
    given = {f"node.{k}": v for k, v in node.items()} | {"interconnect.link_bw_GBps": link_bw_GBps}
    return ClusterSpec.model_validate(base).with_given(given)


SMALL_MODEL = ModelSpec(
    name="gpt-small-test", layers=8, hidden=1536, heads=16, seq_len=1024, vocab=32000
)


def small_job(
    cluster: ClusterSpec,
    tp: int,
    pp: int,
    dp: int,
    *,
    micro_batch: int = 1,
    global_batch: int | None = None,
    model: ModelSpec = SMALL_MODEL,
    **layout: Any,
) -> Job:
    train: dict[str, Any] = {
        "global_batch": global_batch or 4 * dp * micro_batch,
        "micro_batch": micro_batch,
        "precision": "fp32",
        "optimizer": "adam",
    }
    for key in ("recompute", "recompute_stages", "overlap_grad_reduce", "tokens", "zero_stage"):
        if key in layout:
            train[key] = layout.pop(key)
    return make_job(cluster, model, TrainSpec(**train), Layout(tp=tp, pp=pp, dp=dp, **layout))
