"""A calibrated cluster profile: a base profile with every measured figure replaced.

What is measured replaces the base profile's figure; what is not measurable from inside a
process (power, the OS's reserved memory, the scheduler) is kept from the base profile.
Per-process figures (each of ``ranks`` single-threaded processes measured while all of them
ran at once, :class:`~fugaku_sim.calibrate.calibration.Calibration`) become node figures by
multiplying by ``ranks``, and ``processes_per_node`` is ``ranks``: one process per core fills
the node. :mod:`fugaku_sim.calibrate.record` writes the result with its provenance.
"""

from __future__ import annotations

from typing import Any

from fugaku_sim.calibrate.calibration import Calibration
from fugaku_sim.errors import UserError
from fugaku_sim.spec import ClusterSpec
from fugaku_sim.spec.cluster import SwitchedInterconnect
from fugaku_sim.spec.load import validate_section


def calibrated_cluster(
    base: ClusterSpec, name: str, cal: Calibration, clock_GHz: float | None,
    mem_GiB: float | None, cores: int | None = None,
) -> ClusterSpec:
    """``base`` with every measured figure replaced by ``cal``'s (node = ranks x process).

    Raises:
        UserError: ``base`` is not a single-node switched profile.
    """
    if not isinstance(base.interconnect, SwitchedInterconnect):
        raise UserError(f"--base: {base.name} has a {base.interconnect.kind} interconnect; "
                        "calibrate measures one machine: use a switched profile (local)")
    n = cal.ranks
    fp32_T = cal.gemm.peak_flops * n / 1e12
    data = base.model_dump(mode="json")
    data["name"] = name
    data["description"] = f"{base.description} (calibrated by fugaku-sim calibrate)".strip()
    node = data["node"]
    node.update(
        cores=cores or n,
        processes_per_node=n,
        peak_TFLOPs={"fp64": cal.fp64_flops * n / 1e12, "fp32": fp32_T,
                     "fp16": fp32_T, "bf16": fp32_T},
        mem_bw_GBps=cal.mem_bw_Bps * n / 1e9,
        gemm_efficiency=[{"min_dim": d, "efficiency": e} for d, e in cal.gemm.points],
        op_overhead_us=cal.op_overhead_s * 1e6,
        elementwise_Gelem_per_s={k: n / c / 1e9
                                 for k, c in sorted(cal.elementwise_s_per_element.items())},
    )
    if clock_GHz:
        node["clock_GHz"] = clock_GHz
    if mem_GiB:
        node["mem_GiB"] = mem_GiB
    data["interconnect"]["intra_node"].update(
        bw_GBps=cal.intra_node_link.bw_Bps / 1e9, latency_us=cal.intra_node_link.latency_s * 1e6
    )
    return validate_section(ClusterSpec, _rounded(data), f"calibrated profile {name}")


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, so the YAML stays readable."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
