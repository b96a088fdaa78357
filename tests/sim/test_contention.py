"""Collectives whose rings meet: which meet, how much they slow each other, the fluid share."""

from __future__ import annotations

from typing import Any

import pytest
import simpy

from fugaku_sim.sim.contention import Contention, LinkShare, contention_in
from fugaku_sim.sim.predict import predict, prepare
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job
from fugaku_sim.spec.job import Job
from tests.sim.small import small_job, small_torus


def issue_case(m: int = 6, **kw: Any) -> Job:
    """Two stages' tensor rings interleaved on a line of 16 nodes (issue 13, item 7)."""
    return small_job(small_torus((4, 2, 2)), 8, 2, 1, micro_batch=2, global_batch=2 * m,
                     placement="linear", schedule="gpipe", recompute="all",
                     rank_order="pp-dp-tp", **kw)


def test_interleaved_stages_meet_and_fast_mode_follows_the_detailed_one() -> None:
    """Was 0.251 s of tensor communication in fast mode against 0.373 s in detailed mode
    (+15% step): the stages' all-reduces coincide in steady state on shared links."""
    job = issue_case()
    contention = Contention(prepare(job).comm)
    assert contention.stages_meet("tp") and contention_in(job, contention) == (True, False)
    fast, detailed = predict(job), predict(job, "detailed")
    assert fast.breakdown_s["tp_comm"] == pytest.approx(detailed.breakdown_s["tp_comm"], rel=0.01)
    assert fast.step_time_s == pytest.approx(detailed.step_time_s, rel=0.01)


def test_one_micro_batch_never_overlaps_so_nothing_is_shared() -> None:
    """With one micro-batch the two stages never run at once: fast equals detailed exactly,
    as it did before stages could share."""
    job = issue_case(m=1)
    assert predict(job).step_time_s == pytest.approx(predict(job, "detailed").step_time_s,
                                                     rel=1e-9)


def test_the_reference_placement_meets_nothing_and_keeps_its_step() -> None:
    preset = load_model_preset("fugaku-llm-13b")
    job = make_job(load_cluster("fugaku"), preset.model, TrainSpec(**preset.train),
                   Layout(**preset.layout))
    setup = prepare(job)
    assert contention_in(job, setup.contention) == (False, False)
    assert predict(job, setup=setup).step_time_s == pytest.approx(12.8587, abs=5e-4)


def test_two_stages_at_once_each_drain_at_the_shared_rate() -> None:
    """Stage 0 starts a collective at t = 0, stage 1 the same one at t = 0 too: both take
    latency + bandwidth x slowdown. Started half a bandwidth term later, the second runs
    alone once the first has finished (fluid arithmetic worked by hand)."""
    job = issue_case()
    comm = prepare(job).comm
    contention = Contention(comm)
    plan = comm.tp_plan(0)
    nbytes = 8e6
    name = plan.best(nbytes)
    latency = sum(p.latency_time_s() for p in plan.phases(name))
    work = sum(p.bandwidth_time_s(nbytes) for p in plan.phases(name))
    slow = contention.slowdown(("tp", 0), name, frozenset({("tp", 1)}))
    assert slow > 1.0 and contention.slowdown(("tp", 0), name, frozenset()) == 1.0

    def run(delay: float) -> list[float]:
        env = simpy.Environment()
        share, ends = LinkShare(env, contention), []

        def go(stage: int, wait: float) -> Any:
            yield env.timeout(wait)
            yield from share.run("tp", stage, nbytes, "allreduce")
            ends.append(env.now)

        env.process(go(0, 0.0))
        env.process(go(1, delay))
        env.run()
        return sorted(ends)

    assert run(0.0) == pytest.approx([latency + work * slow] * 2)
    # the first runs alone for d = work / 2, then both at 1 / slow; it has work / 2 left
    d = work / 2
    first = latency + d + (work - d) * slow
    second_done_shared = (first - latency - d)  # bandwidth seconds the second did shared
    second = first + (work - second_done_shared / slow)
    assert run(d) == pytest.approx([first, second])
