"""Sweep: vary one quantity of a job and predict each variant (what-if analysis).

Quantities (``--vary``) and what a value means:

- ``nodes``: node count at fixed tp, pp and global batch (strong scaling): dp follows; the
  job shape is chosen anew for each count.
- ``dp``: data-parallel degree at fixed tp, pp and micro-batches per replica (weak scaling):
  the global batch grows with dp.
- ``global_batch``, ``micro_batch``: sequences.
- ``link_bw``: network bandwidth in GB/s per link and direction (torus) or per rail (switched).
- ``hop_latency``: microseconds per router hop (torus).
- ``gemm_efficiency``: the efficiency of the largest GEMMs; the whole curve is scaled by
  value / its top (capped at 1).
- ``mem_bw``: node memory bandwidth, GB/s.
- ``mtbf_node_h``: node MTBF, hours. ``checkpoint_write``: aggregate checkpoint write GB/s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.predict import predict
from fugaku_sim.spec import ClusterSpec, make_job
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS
from fugaku_sim.spec.figures import sequences_per_replica
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.load import validate_section

#: each quantity ``--vary`` takes, with the axis label that gives its unit
VARIABLE_LABELS = {
    "nodes": "nodes",
    "dp": "data-parallel degree (replicas)",
    "global_batch": "global batch (sequences)",
    "micro_batch": "micro-batch (sequences)",
    "link_bw": "link bandwidth (GB/s per link and direction)",
    "hop_latency": "router hop latency (µs)",
    "gemm_efficiency": "efficiency of the largest GEMMs (fraction of peak)",
    "mem_bw": "memory bandwidth (GB/s per node)",
    "mtbf_node_h": "node MTBF (hours)",
    "checkpoint_write": "checkpoint write bandwidth (GB/s, aggregate)",
}
VARIABLES = tuple(VARIABLE_LABELS)


def axis_label(vary: str, cluster: ClusterSpec) -> str:
    """The varied quantity with its unit, as the sweep's plot and CSV name it (a switched
    network's bandwidth is per rail)."""
    if vary == "link_bw" and cluster.interconnect.kind != "torus":
        return "network bandwidth (GB/s per rail)"
    return VARIABLE_LABELS[vary]


def _cluster(cluster: ClusterSpec, path: str, value: Any) -> ClusterSpec:
    """A copy of ``cluster`` with the dotted field ``path`` set (a given figure: its
    assumed range goes, :meth:`ClusterSpec.with_given`)."""
    return cluster.with_given({path: value})


def _whole(vary: str, value: float) -> int:
    """``value`` as the whole count ``vary`` is (nodes, dp, sequences).

    Raises:
        SpecError: the value has a fraction (it would be cut silently otherwise).
    """
    if not float(value).is_integer():
        raise SpecError(f"{vary}: {value:g} is not a whole number")
    return int(value)


def _scaled_curve(cluster: ClusterSpec, top: float) -> ClusterSpec:
    curve = cluster.node.gemm_efficiency
    factor = top / curve[-1].efficiency
    points = [{"min_dim": p.min_dim, "efficiency": min(1.0, p.efficiency * factor)} for p in curve]
    return _cluster(cluster, "node.gemm_efficiency", points)


def _link_bw(cluster: ClusterSpec, value: float) -> ClusterSpec:
    if cluster.interconnect.kind == "torus":
        return _cluster(cluster, "interconnect.link_bw_GBps", value)
    return _cluster(cluster, "interconnect.inter_node.bw_GBps", value)


def variant(job: Job, vary: str, value: float) -> Job:
    """``job`` with ``vary`` set to ``value``.

    Raises:
        SpecError: the variant is not a valid job (named field and reason).
    """
    c, m, t, lay = job.cluster, job.model, job.train, job.layout
    cluster_edits: dict[str, Callable[[], ClusterSpec]] = {
        "link_bw": lambda: _link_bw(c, value),
        "hop_latency": lambda: _cluster(c, "interconnect.hop_latency_us", value),
        "gemm_efficiency": lambda: _scaled_curve(c, value),
        "mem_bw": lambda: _cluster(c, "node.mem_bw_GBps", value),
        "mtbf_node_h": lambda: _cluster(c, "mtbf_node_h", value),
        "checkpoint_write": lambda: _cluster(c, "checkpoint_write_GBps", value),
    }
    if vary in cluster_edits:
        c = cluster_edits[vary]()
    elif vary == "nodes":
        ranks = _whole(vary, value) * job.processes_per_node
        if ranks % (lay.tp * lay.pp):
            raise SpecError(f"nodes: {int(value)} is not a multiple of tp x pp / ppn")
        lay = lay.model_copy(update={"dp": ranks // (lay.tp * lay.pp), "job_shape": None})
    elif vary == "dp":
        per_replica = sequences_per_replica(t, lay.dp)
        lay = lay.model_copy(update={"dp": _whole(vary, value), "job_shape": None})
        t = t.model_copy(update={"global_batch": per_replica * int(value)})
    elif vary in ("global_batch", "micro_batch"):
        t = t.model_copy(update={vary: _whole(vary, value)})
    else:
        raise SpecError(f"--vary: {vary!r} is not one of {', '.join(VARIABLES)}")
    return make_job(c, m, validate_section(type(t), t.model_dump(), "", "train"),
                    validate_section(type(lay), lay.model_dump(), "", "layout"), job.stack)


def sweep(job: Job, vary: str, values: list[float],
          progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """One row per value: the prediction's JSON fields, or ``error`` for an invalid variant;
    ``progress(done, total)`` before each value and at the end."""
    rows = []
    for i, value in enumerate(values):
        if progress is not None:
            progress(i, len(values))
        row: dict[str, Any] = {"value": value}
        try:
            row.update(predict(variant(job, vary, value)).to_json())
        except UserError as exc:
            row["error"] = str(exc)
        rows.append(row)
    if progress is not None:
        progress(len(values), len(values))
    return rows


CSV_FIELDS = (
    "value",
    "nodes",
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "global_batch",
    "grad_accum",
    "job_shape",
    "step_time_s",
    "tokens_per_s",
    "tflops_per_node",
    "mfu",
    "memory_per_node_GiB",
    "fits_memory",
    "time_to_train_days",
    "node_hours",
    "energy_MWh",
    "checkpoint_interval_s",
    "failure_overhead",
)


def csv_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells: the main fields, the breakdown as ``breakdown_<term>_s``, errors."""
    header = list(CSV_FIELDS) + [f"breakdown_{k}_s" for k in BREAKDOWN_KEYS] + ["error"]
    out = []
    for r in rows:
        cells = [_cell(r.get(k)) for k in CSV_FIELDS]
        cells += [_cell(r.get("breakdown_s", {}).get(k)) for k in BREAKDOWN_KEYS]
        cells.append(r.get("error", ""))
        out.append(cells)
    return header, out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)
