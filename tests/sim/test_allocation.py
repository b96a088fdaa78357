"""Which allocation a job gets on Fugaku, and that small jobs and 4 processes per node predict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fugaku_sim.sim.allocation import resolve_allocation
from fugaku_sim.sim.jobchain import Chain
from fugaku_sim.sim.jobscript import JobSettings, pjm_request
from fugaku_sim.sim.memory import memory_by_stage
from fugaku_sim.sim.predict import predict, prepare
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job
from fugaku_sim.spec.job import Job

FUGAKU = load_cluster("fugaku")
GPT2 = load_model_preset("gpt2-small").model


def job(tp: int = 1, pp: int = 1, dp: int = 1, batch_per_dp: int = 2, **layout: Any) -> Job:
    train = TrainSpec(global_batch=dp * batch_per_dp, micro_batch=1)
    return make_job(FUGAKU, GPT2, train, Layout(tp=tp, pp=pp, dp=dp, **layout))


# (nodes, processes per node) -> (tp, dp): the Fugaku-LLM team's benchmark node counts
LAYOUTS = {
    (1, 1): (1, 1), (4, 1): (4, 1), (20, 1): (4, 5), (64, 1): (4, 16), (512, 1): (1, 512),
    (1, 4): (4, 1), (4, 4): (4, 4), (20, 4): (4, 20), (64, 4): (4, 64), (512, 4): (4, 512),
}


@pytest.mark.parametrize(("nodes", "ppn"), sorted(LAYOUTS))
def test_predict_accepts_the_benchmark_node_counts(nodes: int, ppn: int) -> None:
    tp, dp = LAYOUTS[(nodes, ppn)]
    j = job(tp=tp, dp=dp, processes_per_node=ppn)
    d = predict(j).to_json()
    assert d["nodes"] == nodes and j.processes_per_node == ppn
    assert d["allocation"] == ("torus" if nodes > 384 else "noncont")
    assert d["job_shape"] == str(nodes)
    assert 0 < d["mfu"] < 1 and d["step_time_s"] > 0


def test_cli_predicts_four_nodes_of_four_processes(run_cli) -> None:
    status, out, err = run_cli(
        "predict", "--cluster", "fugaku", "--model", "gpt2-small", "--tp", "4", "--dp", "4",
        "--processes-per-node", "4", "--global-batch", "8", "--json",
    )
    assert status == 0, err
    d = json.loads(out)
    assert (d["nodes"], d["allocation"], d["job_shape"]) == (4, "noncont", "4")


def test_a_shape_of_whole_units_stays_a_torus_job() -> None:
    assert resolve_allocation(job(tp=4, dp=3)).shape == [2, 3, 2]
    assert resolve_allocation(job(tp=4, dp=3)).kind == "torus"
    assert resolve_allocation(job(tp=4, dp=3, allocation="noncont")).kind == "noncont"


def test_a_node_count_means_what_pjsub_node_n_means() -> None:
    """node=N takes the default method of the group for N: noncont in small, torus in large."""
    assert resolve_allocation(job(tp=4, dp=16, job_shape=[64])).kind == "noncont"
    big = resolve_allocation(job(dp=512, job_shape=[512]))
    assert (big.kind, big.shape, big.block) == ("torus", [512], [4, 6, 22])
    small = resolve_allocation(job(tp=4, allocation="torus"))
    assert (small.kind, small.shape, small.block, small.request) == (
        "torus", [4], [2, 3, 2], "4:torus")


def test_tensor_groups_fill_a_node_first_with_four_processes() -> None:
    j = job(tp=4, dp=16, processes_per_node=4)
    placement = prepare(j).placement
    groups = placement.node.reshape(16, 4)  # rank order tp-dp-pp: tensor peers consecutive
    assert (groups == groups[:, :1]).all()  # each tensor group on one node, one per CMG
    assert sorted(placement.slot[:4].tolist()) == [0, 1, 2, 3]
    per_rank = memory_by_stage(j)[0].total
    assert predict(j).to_json()["memory_per_node_GiB"] * 2**30 == pytest.approx(4 * per_rank)


def test_a_process_gets_a_quarter_of_the_node() -> None:
    """Each of 4 processes runs at one CMG's rates (a quarter of the node's peak and memory
    bandwidth): the same micro-batches take 4 times as long, less the fixed per-op cost."""
    whole = predict(job(dp=1)).breakdown_s["compute"]
    cmg = predict(job(dp=4, processes_per_node=4)).breakdown_s["compute"]
    assert 3.8 < cmg / whole <= 4.0


def test_jobscript_asks_for_a_noncont_job_in_the_small_group() -> None:
    chain = Chain(10, 1, 3600.0, None, None, None, 1, "one job")
    settings = JobSettings("gpt2-small", load_cluster("fugaku").scheduler)
    pred = predict(job(tp=4, dp=16))
    request = pjm_request(pred, settings, chain)
    assert (request.node, request.rscgrp) == ("64:noncont", "small")
    assert pred.record.layout.allocation == "noncont"  # what the script's train line reads
    big = pjm_request(predict(job(dp=512)), settings, chain)
    assert (big.node, big.rscgrp) == ("512:torus", "large")


def test_check_json_shows_the_allocation(run_cli) -> None:
    status, out, err = run_cli(
        "check", "--cluster", "fugaku", "--model", "gpt2-small", "--tp", "4", "--dp", "5",
        "--global-batch", "10", "--json",
    )
    assert status == 0, err
    d = json.loads(out)
    assert (d["allocation"], d["job_shape"], d["processes_per_node"]) == ("noncont", "20", 1)


def test_detailed_mode_agrees_on_a_noncont_job() -> None:
    j = job(tp=4, pp=2, dp=4, batch_per_dp=4, allocation="noncont")
    assert predict(j, "detailed").step_time_s == pytest.approx(predict(j).step_time_s, rel=0.02)
