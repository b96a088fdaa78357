"""Sweep: every quantity ``--vary`` offers changes what it names, and nothing else offered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fugaku_sim.errors import SpecError
from fugaku_sim.sim.sweep import VARIABLES, sweep, variant
from fugaku_sim.spec.job import Job
from tests.sim.test_predict import fugaku_llm

# quantity -> (a value other than the preset's, where the varied job holds it)
READ: dict[str, tuple[float, Callable[[Job], Any]]] = {
    "nodes": (6912, lambda j: j.nodes),
    "dp": (144, lambda j: j.layout.dp),
    "global_batch": (4032, lambda j: j.train.global_batch),
    "micro_batch": (7, lambda j: j.train.micro_batch),  # 2016 = 7 x 288
    "link_bw": (3.4, lambda j: j.cluster.interconnect.link_bw_GBps),
    "hop_latency": (0.2, lambda j: j.cluster.interconnect.hop_latency_us),
    "gemm_efficiency": (0.5, lambda j: j.cluster.node.gemm_efficiency[-1].efficiency),
    "mem_bw": (512.0, lambda j: j.cluster.node.mem_bw_GBps),
    "mtbf_node_h": (1e5, lambda j: j.cluster.mtbf_node_h),
    "checkpoint_write": (100.0, lambda j: j.cluster.checkpoint_write_GBps),
}


def test_every_offered_quantity_has_a_case() -> None:
    assert set(READ) == set(VARIABLES)


@pytest.mark.parametrize("vary", VARIABLES)
def test_each_quantity_sets_what_it_names(vary: str) -> None:
    job = fugaku_llm()
    value, read = READ[vary]
    assert read(job) != value
    varied = variant(job, vary, value)
    assert read(varied) == pytest.approx(value)
    assert varied.model == job.model


def test_weak_scaling_keeps_the_batch_per_replica() -> None:
    job = fugaku_llm()
    varied = variant(job, "dp", 144)
    assert varied.train.global_batch // 144 == job.train.global_batch // job.layout.dp


def test_unknown_quantity_is_refused(run_cli) -> None:
    with pytest.raises(SpecError, match="--vary: 'link_latency' is not one of nodes, dp"):
        variant(fugaku_llm(), "link_latency", 1.0)
    status, _, err = run_cli("sweep", "--cluster", "fugaku", "--model", "fugaku-llm-13b",
                             "--vary", "link_latency", "--values", "1", "--out", "unused")
    assert status == 2 and "invalid choice: 'link_latency'" in err


def test_sweep_reports_invalid_variants_per_row() -> None:
    rows = sweep(fugaku_llm(), "nodes", [13824, 1000])
    assert "step_time_s" in rows[0] and "error" in rows[1]
