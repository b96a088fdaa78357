"""predict(): the contract, the breakdown, placement effects, fast vs detailed, properties."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fugaku_sim.errors import SpecError
from fugaku_sim.sim.predict import predict, prepare, reprice
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS
from fugaku_sim.spec.job import Job
from fugaku_sim.spec.ranges import with_numbers
from tests.sim.small import small_job, small_torus

CONTRACT = (
    "nodes",
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "global_batch",
    "grad_accum",
    "step_time_s",
    "tokens_per_s",
    "tflops_per_node",
    "mfu",
    "memory_per_node_GiB",
    "fits_memory",
    "breakdown_s",
    "time_to_train_days",
    "node_hours",
    "energy_MWh",
)
TERMS = set(BREAKDOWN_KEYS)


def fugaku_llm(**layout: Any) -> Job:
    preset = load_model_preset("fugaku-llm-13b")
    return make_job(
        load_cluster("fugaku"),
        preset.model,
        TrainSpec(**preset.train),
        Layout(**{**preset.layout, **layout}),
    )


def test_fugaku_llm_contract() -> None:
    d = predict(fugaku_llm()).to_json()
    assert set(CONTRACT) <= set(d)
    assert set(d["breakdown_s"]) == TERMS
    assert sum(d["breakdown_s"].values()) == pytest.approx(d["step_time_s"], rel=1e-12)
    assert d["recompute_stages"] == [0, 1, 2, 3]
    assert d["grad_accum"] == 7 and d["nodes"] == 13824 and d["job_shape"] == "48x6x48"
    assert d["fits_memory"] and 0 < d["mfu"] < 1
    assert d["tokens_per_s"] == pytest.approx(2016 * 2048 / d["step_time_s"])
    assert d["node_hours"] == pytest.approx(13824 * d["time_to_train_days"] * 24)
    assert d["breakdown_s"]["tp_comm"] > 0 and d["breakdown_s"]["dp_comm"] > 0


def test_placement_changes_the_prediction() -> None:
    topo = predict(fugaku_llm(placement="topology")).breakdown_s
    linear = predict(fugaku_llm(placement="linear")).breakdown_s
    assert (
        linear["tp_comm"] > 1.5 * topo["tp_comm"]
    )  # a 6-ring over consecutive nodes closes in 5 hops
    assert linear["dp_comm"] > topo["dp_comm"]
    assert linear["compute"] == pytest.approx(topo["compute"])


def test_overlap_hides_gradient_all_reduce() -> None:
    plain = predict(fugaku_llm())
    overlapped = predict(
        make_job(
            plain.job.cluster,
            plain.job.model,
            plain.job.train.model_copy(update={"overlap_grad_reduce": True}),
            plain.job.layout,
        )
    )
    assert overlapped.breakdown_s["dp_comm"] < plain.breakdown_s["dp_comm"]
    assert overlapped.step_time_s <= plain.step_time_s


def test_fugaku_llm_what_if_selective_instead_of_full_recompute_on_stages_0_to_3() -> None:
    """Issue 13's what-if. Sequence parallelism needs tp | seq_len: TP6 with s = 2048 is
    refused (one line, naming the field), and no layout with it exists on 13,824 nodes at
    global batch 2016 (dp | 2016 and tp x pp x dp = 2^9 3^3 leave tp 2 or 4, dp >= 432).
    Selective recomputation everywhere instead of full recomputation on stages 0-3: a
    shorter step, within the node's memory (README, "Sequence parallelism, selective
    recomputation and ZeRO")."""
    with pytest.raises(SpecError, match=r"^layout.sequence_parallel: layout.tp \(6\) does not"):
        fugaku_llm(sequence_parallel=True)
    base = predict(fugaku_llm())
    job = base.job
    selective = predict(make_job(job.cluster, job.model,
                                 job.train.model_copy(update={"recompute": "selective"}),
                                 job.layout))
    d = selective.to_json()
    assert d["fits_memory"] and d["selective_recompute_stages"] == list(range(8))
    assert selective.step_time_s == pytest.approx(0.932 * base.step_time_s, rel=0.01)
    assert selective.breakdown_s["recompute"] < 0.1 * base.breakdown_s["recompute"]


SMALL_CASES = [
    dict(tp=4, pp=4, dp=4, placement="linear", rank_order="dp-tp-pp"),
    dict(tp=2, pp=4, dp=8, placement="topology", recompute="first-half"),
    dict(tp=2, pp=2, dp=16, placement="linear", overlap_grad_reduce=True),
    dict(tp=4, pp=2, dp=8, placement="topology", schedule="interleaved", virtual_stages=2),
    dict(tp=2, pp=8, dp=4, placement="linear", rank_order="dp-pp-tp"),
    dict(tp=4, pp=4, dp=8, placement="topology", processes_per_node=2),
    dict(tp=4, pp=4, dp=4, placement="topology", sequence_parallel=True, recompute="selective"),
    dict(tp=2, pp=2, dp=16, placement="linear", zero_stage=2, recompute="selective"),
    dict(tp=2, pp=1, dp=32, placement="topology", zero_stage=3, sequence_parallel=True),
]


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_fast_agrees_with_detailed_on_a_4x4x4_torus(case: dict[str, Any]) -> None:
    case = dict(case)
    tp, pp, dp = case.pop("tp"), case.pop("pp"), case.pop("dp")
    job = small_job(small_torus(), tp, pp, dp, global_batch=8 * dp, **case)
    fast, detailed = predict(job, "fast"), predict(job, "detailed")
    assert detailed.step_time_s == pytest.approx(fast.step_time_s, rel=0.02)


@st.composite
def small_jobs(draw: st.DrawFn) -> Job:
    dims = draw(st.sampled_from([(2, 2, 2), (4, 2, 2), (4, 4, 2)]))
    nodes = dims[0] * dims[1] * dims[2]
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if nodes % t == 0]))
    pp = draw(st.sampled_from([p for p in (1, 2, 4, 8) if nodes % (tp * p) == 0]))
    dp = nodes // (tp * pp)
    m = draw(st.integers(1, 6))
    b = draw(st.sampled_from([1, 2]))
    layout = {
        "placement": draw(st.sampled_from(["linear", "topology"])),
        "schedule": draw(st.sampled_from(["1f1b", "gpipe"])),
        "recompute": draw(st.sampled_from(["none", "all", "selective"])),
        "rank_order": draw(st.sampled_from(["tp-dp-pp", "dp-tp-pp", "pp-dp-tp"])),
        "sequence_parallel": tp > 1 and draw(st.booleans()),
        "zero_stage": draw(st.sampled_from([0, 1, 2, 3] if pp == 1 else [0, 1, 2])),
    }
    return small_job(
        small_torus(dims), tp, pp, dp, micro_batch=b, global_batch=m * b * dp, **layout
    )


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(small_jobs())
def test_mfu_at_most_one_and_step_covers_each_stage_compute(job: Job) -> None:
    p = predict(job)
    assert 0 < p.mfu <= 1
    for ledger in p.result.ledgers.values():
        assert ledger.seconds["compute"] + ledger.seconds["recompute"] <= p.step_time_s + 1e-12
    assert sum(p.breakdown_s.values()) == pytest.approx(p.step_time_s, rel=1e-12)


@PROPERTY
@given(small_jobs())
def test_halving_link_bandwidth_never_shortens_a_step(job: Job) -> None:
    ic = job.cluster.interconnect
    slower = job.cluster.model_copy(
        update={"interconnect": ic.model_copy(update={"link_bw_GBps": ic.link_bw_GBps / 2})}  # type: ignore[union-attr]
    )
    half = make_job(slower, job.model, job.train, job.layout)
    assert predict(half).step_time_s >= predict(job).step_time_s * (1 - 1e-12)


@PROPERTY
@given(small_jobs(), st.integers(1, 6))
def test_more_micro_batches_never_raise_the_bubble_fraction(job: Job, extra: int) -> None:
    t = job.train
    more = t.model_copy(
        update={"global_batch": t.global_batch + extra * t.micro_batch * job.layout.dp}
    )
    bigger = make_job(job.cluster, job.model, more, job.layout)
    assert predict(bigger).bubble_fraction <= predict(job).bubble_fraction + 1e-9


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(small_jobs())
def test_fast_equals_detailed_on_random_small_tori(job: Job) -> None:
    fast, detailed = predict(job, "fast"), predict(job, "detailed")
    assert detailed.step_time_s == pytest.approx(fast.step_time_s, rel=0.02)


def _rate_paths(job: Job) -> list[tuple[str, float]]:
    """Every number of the job's interconnect but its shape: ("interconnect.PATH", value)."""
    out: list[tuple[str, float]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out.append((prefix, float(value)))

    walk("interconnect", job.cluster.interconnect.model_dump())
    return [(p, v) for p, v in out if v > 0]


def _jobs_on_three_networks() -> dict[str, Job]:
    model = load_model_preset("gpt-tiny").model
    return {
        "torus": small_job(small_torus((2, 2, 2)), 2, 2, 2),
        "noncont": make_job(load_cluster("fugaku"), model,
                            TrainSpec(global_batch=40, micro_batch=2),
                            Layout(tp=1, pp=2, dp=10, allocation="noncont")),
        "switched": make_job(load_cluster("dgx-a100"), model,
                             TrainSpec(global_batch=32, micro_batch=2), Layout(tp=2, pp=2, dp=4)),
    }


@pytest.mark.parametrize("name", ["torus", "noncont", "switched"])
def test_a_repriced_setup_predicts_as_one_placed_anew(name: str) -> None:
    """Every interconnect rate or latency moved (halved, tripled): the flows' loads kept
    from the first pricing give exactly the step of a job placed and priced anew."""
    job = _jobs_on_three_networks()[name]
    setup = prepare(job)
    predict(job, setup=setup)  # every plan priced, its loads kept
    paths = _rate_paths(job)
    assert len(paths) >= 4
    for path, value in paths:
        for factor in (0.5, 3.0):
            moved_value = float(max(1, round(value * factor))) if value.is_integer() else value * factor
            try:
                moved = replace(job, cluster=with_numbers(job.cluster, {path: moved_value}, "c"))
            except SpecError:
                continue  # a value the profile's rules refuse
            again = predict(moved, setup=reprice(setup, moved))
            anew = predict(moved, setup=prepare(moved))
            assert again.step_time_s == anew.step_time_s, (path, factor)
            assert again.breakdown_s == anew.breakdown_s, (path, factor)


def test_a_network_that_routes_otherwise_is_placed_anew() -> None:
    job = _jobs_on_three_networks()["torus"]
    setup = prepare(job)
    bigger = make_job(small_torus((4, 2, 1)), job.model, job.train, job.layout)
    with pytest.raises(ValueError, match="routes flows differently"):
        setup.comm.repriced(prepare(bigger).network)
    again = reprice(setup, bigger)
    assert again.network.routes_key == prepare(bigger).network.routes_key
    assert predict(bigger, setup=again).step_time_s == predict(bigger).step_time_s
    noncont = _jobs_on_three_networks()["noncont"]  # another allocation: placed anew too
    moved = make_job(load_cluster("fugaku"), noncont.model,
                     noncont.train.model_copy(update={"global_batch": 36}),
                     noncont.layout.model_copy(update={"allocation": "torus", "dp": 6}))
    assert reprice(prepare(noncont), moved).allocation == prepare(moved).allocation
