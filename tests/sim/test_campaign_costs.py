"""What a campaign pays outside the step, derived from the job and its profile."""

from __future__ import annotations

import math

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.sim.campaign_costs import (
    checkpoint_interval,
    checkpoint_write_s,
    default_elapse_h,
    forward_share,
    plan_campaign,
    repredicted_shrink,
    restore_cost,
)
from fugaku_sim.sim.distributions import NoFailures, Quantiles
from fugaku_sim.sim.predict import predict
from fugaku_sim.sim.reliability import daly_interval_s, young_interval_s
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job
from fugaku_sim.spec.campaign import CampaignSettings
from tests.sim.small import small_job, small_torus


@pytest.fixture(scope="module")
def reference():
    """Fugaku-LLM 13B in its production layout, predicted once."""
    preset = load_model_preset("fugaku-llm-13b")
    job = make_job(load_cluster("fugaku"), preset.model, TrainSpec(**preset.train),
                   Layout(**preset.layout))
    return predict(job), CampaignSettings(**preset.campaign)


def test_reference_checkpoint_is_about_160_GB(reference) -> None:
    pred, _ = reference
    # What the 48 model-parallel ranks write, by hand: the 13,174,928,640 parameters, plus the
    # tied head copy on the last stage (V x C), plus the tensors every one of the 6 tensor
    # ranks holds whole written 5 more times (per layer 2 norms of 2C and 2 row biases of C,
    # the final norm 2C, the position table s x C), plus the vocabulary padded 50,570 -> 50,574
    # rows on the embedding and on the head copy; x (4 B weights + 8 B Adam states) = 162 GB
    v, c, s, layers, tp = 50570, 5184, 2048, 40, 6
    params = 13174928640 + v * c + (tp - 1) * (layers * 6 * c + 2 * c + s * c) + 2 * 4 * c
    assert checkpoint_write_s(pred.job) == pytest.approx(params * 12 / 150e9, rel=1e-9)
    # every one of the 288 replicas reads the whole checkpoint back
    assert restore_cost(pred.job).seconds(288) == pytest.approx(288 * params * 12 / 150e9,
                                                                rel=1e-9)


def test_zero_shards_the_optimizer_read() -> None:
    cluster = small_torus((2, 2, 2))
    base = small_job(cluster, 1, 1, 8)
    sharded = make_job(cluster, base.model, base.train.model_copy(update={"zero_stage": 1}),
                       base.layout)
    full, part = restore_cost(base), restore_cost(sharded)
    assert full.once_s == 0.0
    assert part.per_replica_s == pytest.approx(full.per_replica_s / 3)  # 4 of 12 B/param
    # weights on every replica, the optimizer states (8 of 12 B/param) once
    assert part.seconds(8) == pytest.approx((8 + 2) * full.per_replica_s / 3)


def test_forward_share_is_a_third_without_recomputation() -> None:
    pred = predict(small_job(small_torus((2, 2, 2)), 2, 2, 2))
    assert forward_share(pred) == pytest.approx(1 / 3)
    recomputed = predict(small_job(small_torus((2, 2, 2)), 2, 2, 2, recompute="all"))
    assert forward_share(recomputed) < 1 / 3


def test_interval_rules() -> None:
    fixed = CampaignSettings(checkpoint_every=250)
    assert checkpoint_interval(fixed, 1.0, 1e5, 10.0, math.inf).steps == 250
    young = CampaignSettings(checkpoint_every="young")
    assert checkpoint_interval(young, 60.0, 86400.0, 10.0, math.inf).steps == round(
        young_interval_s(60.0, 86400.0) / 10.0)
    daly = CampaignSettings(checkpoint_every="daly")
    assert checkpoint_interval(daly, 60.0, 86400.0, 10.0, math.inf).steps == round(
        daly_interval_s(60.0, 86400.0) / 10.0)
    assert checkpoint_interval(young, 60.0, 86400.0, 10.0, 100).steps == 100  # fits a job
    assert checkpoint_interval(young, 60.0, math.inf, 10.0, math.inf).steps is None


def test_reference_plan(reference) -> None:
    pred, settings = reference
    plan, interval = plan_campaign(pred, settings)
    assert (plan.steps, plan.checkpoint_every, plan.eval_every) == (92_038, 250, 100)
    assert interval.rule == "fixed"
    assert plan.elapse_s == 165 * 3600.0
    assert plan.eval_steps == pytest.approx(10 * forward_share(pred))
    assert plan.failures.mean_s(13824) == pytest.approx(9.5e6 * 3600 / 13824)
    assert plan.startup_s == 900.0
    quiet, _ = plan_campaign(pred, settings, failures=False, queue=False,
                             step=Quantiles(12.0, 13.0, 16.0))
    assert isinstance(quiet.failures, NoFailures) and quiet.queue.p50 == 0.0
    assert quiet.step.p50 == 13.0


def test_elapsed_limit_shorter_than_an_interval_is_refused(reference) -> None:
    pred, settings = reference
    with pytest.raises(UserError, match=r"campaign.elapse_h \(--elapse-h\): 0.5 h is shorter"):
        plan_campaign(pred, settings.model_copy(update={"elapse_h": 0.5}))
    no_checkpoints = settings.model_copy(update={"checkpoint_every": None, "elapse_h": 24.0})
    with pytest.raises(UserError, match="the whole run"):
        plan_campaign(pred, no_checkpoints)
    # Young/Daly intervals shrink to fit instead
    plan, interval = plan_campaign(pred, settings.model_copy(
        update={"checkpoint_every": "young", "elapse_h": 1.0}))
    assert interval.steps is not None and interval.steps < 250


def test_shrink_floor_must_be_below_dp(reference) -> None:
    pred, settings = reference
    with pytest.raises(UserError, match="shrink_dp_min"):
        plan_campaign(pred, settings.model_copy(update={"shrink_dp_min": 288}))


def test_repredicted_shrink_takes_the_busiest_replica(reference) -> None:
    """2016 sequences on 287 replicas: the busiest runs 8 micro-batches instead of 7, which
    costs less than 8/7 because the pipeline bubble is shared (1F1B: (m + p - 1) slots)."""
    pred, _ = reference
    factor = repredicted_shrink(pred)
    slower = factor(287)
    assert 1.0 < slower < 8 / 7
    assert factor(280) == slower  # still 8 micro-batches: cached, same answer
    assert factor(252) == slower  # 2016 / 252 = 8 exactly
    assert factor(251) > slower


def test_elapsed_limit_of_the_resource_group(reference) -> None:
    """Fugaku: a job of up to 384 nodes runs in 'small' (72 h), larger ones in 'large' (24 h);
    the preset's 165 h (a dedicated group) overrides both."""
    pred, settings = reference
    assert default_elapse_h(pred) == 24.0
    job = pred.job
    small = make_job(job.cluster, job.model, job.train.model_copy(update={"global_batch": 14}),
                     job.layout.model_copy(update={"dp": 2, "job_shape": None}))
    small_pred = predict(small)
    assert small.nodes == 96 and default_elapse_h(small_pred) == 72.0
    plan, _ = plan_campaign(small_pred, settings.model_copy(update={"elapse_h": None}))
    assert plan.elapse_s == 72 * 3600.0
