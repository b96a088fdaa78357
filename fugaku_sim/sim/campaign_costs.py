"""What a campaign pays outside the step, from a predicted job and its profile: the plan.

Use (one layout; a search over node counts repeats it per predicted layout, a few ms each
plus the seeds)::

    plan, interval = plan_campaign(predict(job), settings)   # settings: CampaignSettings
    summary = run_campaigns(plan, seeds=1000)                # fugaku_sim.sim.montecarlo
    summary.quantiles("wall_days")["p90"], summary.quantiles("node_hours")["p50"]

- Checkpoint write: the weights and optimizer states (``predict.checkpoint_bytes``) at the
  profile's aggregate write rate (``checkpoint_write_GBps``).
- Restore: every data-parallel replica reads the weights of its stages, and the optimizer
  states too unless ZeRO shards them (then each state is read once): Megatron-DeepSpeed keeps
  one model-states file per (tensor, pipeline) rank that all data-parallel ranks load. At
  the profile's aggregate read rate (``campaign.checkpoint_read_GBps``).
- Start-up: the profile's fixed ``campaign.startup_s`` per job and per in-job restart.
- Evaluation: ``eval_iters`` forward-only global batches; one costs the step time times the
  forward share of the step's arithmetic (forward FLOPs over the hardware FLOPs of a
  training step, recomputation included: backward is twice the forward, Narayanan et al.
  SC21), a first-order estimate that scales the pipeline bubble with the work.
- Checkpoint interval ``young``/``daly``: the optimum compute time between checkpoints for
  the job's system MTBF (``sim/reliability.py``), in steps of step-plus-evaluation time,
  capped so that one interval fits in a job after start-up and restore.
- Shrinking: the step time with dp' replicas, either ``dp / dp'`` (``scale``) or re-predicted
  (``repredict``): the global batch stays, so the busiest replica runs ceil(B / (b dp'))
  micro-batches; the step is predicted for the same layout with that many micro-batches
  per replica (the gradient all-reduce then spans dp instead of dp' ranks, a small
  difference).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.campaign import CampaignPlan, Restore
from fugaku_sim.sim.distributions import Duration, Fixed, NodeFailures, NoFailures, queue_wait
from fugaku_sim.sim.flops import model_flops_per_token, parameter_count
from fugaku_sim.sim.memory import parameter_bytes
from fugaku_sim.sim.predict import Prediction, checkpoint_bytes, predict, prepare
from fugaku_sim.sim.reliability import daly_interval_s, young_interval_s
from fugaku_sim.spec.campaign import CampaignSettings
from fugaku_sim.spec.job import Job, make_job

ShrinkStep = Literal["scale", "repredict"]


def checkpoint_write_s(job: Job) -> float:
    """Seconds to write one checkpoint of the whole model."""
    return checkpoint_bytes(job) / (job.cluster.checkpoint_write_GBps * 1e9)


def restore_cost(job: Job) -> Restore:
    """Seconds to read the checkpoint back on every data-parallel replica."""
    read_Bps = job.cluster.campaign.checkpoint_read_Bps
    full = checkpoint_bytes(job)
    if job.train.zero_stage == 0:
        return Restore(per_replica_s=full / read_Bps)
    weights = parameter_count(job.model) * parameter_bytes(job.train)[0]
    return Restore(per_replica_s=weights / read_Bps, once_s=(full - weights) / read_Bps)


def forward_share(pred: Prediction) -> float:
    """Forward FLOPs of a step over the hardware FLOPs of a training step."""
    job = pred.job
    # model_flops_per_token counts forward + backward = 3 x forward
    forward = model_flops_per_token(job.model) / 3.0 * job.global_batch_tokens
    return forward / pred.hardware_flops_per_step


@dataclass(frozen=True)
class Interval:
    """A resolved checkpoint interval and the rule it came from."""

    steps: int | None
    rule: str


def checkpoint_interval(
    settings: CampaignSettings, write_s: float, mtbf_s: float, step_s: float, fit_steps: float
) -> Interval:
    """Steps between checkpoints: fixed, or Young/Daly for ``mtbf_s`` capped at ``fit_steps``.

    ``step_s`` is the time of a step with its share of the evaluations, seconds.
    """
    every = settings.checkpoint_every
    if every is None or isinstance(every, int):
        return Interval(every, "fixed" if every else "end only")
    optimum = young_interval_s if every == "young" else daly_interval_s
    tau = optimum(write_s, mtbf_s) if math.isfinite(mtbf_s) else math.inf
    steps = min(tau / step_s, fit_steps)
    if not math.isfinite(steps):
        return Interval(None, f"{every} (no failures: end only)")
    return Interval(max(1, round(steps)), every)


def default_elapse_h(pred: Prediction) -> float:
    """The elapsed limit of the job's resource group, else the scheduler's, hours."""
    cluster = pred.job.cluster
    group = cluster.allocation.resource_group_for(pred.job.nodes, pred.allocation.kind)
    if group is not None and group.max_elapse_h is not None:
        return group.max_elapse_h
    return cluster.scheduler.max_elapse_h


def group_elapse_settings(pred: Prediction, settings: CampaignSettings,
                          asked_by_user: bool) -> CampaignSettings:
    """``settings`` with an elapsed time the job's resource group accepts: its limit when
    none is asked, or when the asked one (a model preset's production setting, such as
    Fugaku-LLM's 165 h in a dedicated group) exceeds it.

    Raises:
        UserError: an elapsed time the user asked for exceeds the group's limit.
    """
    limit = default_elapse_h(pred)
    asked = settings.elapse_h
    if asked is not None and asked <= limit:
        return settings
    if asked is not None and asked_by_user:
        group = pred.job.cluster.allocation.resource_group_for(pred.job.nodes,
                                                               pred.allocation.kind)
        where = f"resource group {group.name}" if group else "the scheduler"
        raise UserError(f"--elapse-h: {asked:g} h exceeds the {limit:g}-h limit of {where} for "
                        f"{pred.job.nodes:,} nodes; ask for at most {limit:g} h")
    return settings.model_copy(update={"elapse_h": limit})


def fit_steps(elapse_s: float, overhead_s: float, write_s: float, step_s: float) -> float:
    """The most steps one job can train and save after ``overhead_s`` of start-up/restore."""
    return math.floor((elapse_s - overhead_s - write_s) / step_s) if math.isfinite(
        elapse_s) else math.inf


def check_fits(interval: Interval, fits: float, elapse_s: float, overhead_s: float,
               steps: int, step_s: float) -> None:
    """Raises UserError when no job could save progress under the elapsed limit."""
    need = steps if interval.steps is None else min(interval.steps, steps)
    if need <= fits:
        return
    what = (f"one checkpoint interval ({need:,} steps, {need * step_s / 3600:.2f} h)"
            if interval.steps is not None else f"the whole run ({need * step_s / 3600:.1f} h, "
            "no periodic checkpoints)")
    raise UserError(
        f"campaign.elapse_h (--elapse-h): {elapse_s / 3600:g} h is shorter than start-up and "
        f"restore ({overhead_s / 3600:.2f} h) plus {what}; no job could save its work"
    )


def repredicted_shrink(pred: Prediction) -> Callable[[int], float]:
    """Step time with dp' replicas over the predicted step (see the module docstring).

    Raises:
        UserError: the layout cannot take the busier replica's micro-batch count.
    """
    job, setup = pred.job, prepare(pred.job)
    cache: dict[int, float] = {}
    micro, batch, dp = job.train.micro_batch, job.train.global_batch, job.layout.dp

    def factor(dp_new: int) -> float:
        m = math.ceil(batch / (micro * dp_new))
        if m not in cache:
            train = job.train.model_copy(update={"global_batch": m * micro * dp})
            try:
                busier = make_job(job.cluster, job.model, train, job.layout, job.stack)
            except SpecError as exc:
                raise UserError(f"--shrink-step repredict: {exc}; try --shrink-step scale"
                                ) from None
            cache[m] = predict(busier, setup=setup).step_time_s / pred.step_time_s
        return cache[m]

    return factor


def plan_campaign(
    pred: Prediction,
    settings: CampaignSettings,
    step: Duration | None = None,
    failures: bool = True,
    queue: bool = True,
    shrink: ShrinkStep = "scale",
) -> tuple[CampaignPlan, Interval]:
    """The campaign of a predicted job under ``settings``, and its checkpoint interval.

    ``step`` replaces the predicted step time (quantiles of an interval, a measured time).

    Raises:
        UserError: no token budget, a shrink floor not below dp, or an elapsed limit that no
            job could save progress under.
    """
    job, cluster = pred.job, pred.job.cluster
    steps = job.run_steps()
    if steps is None:
        raise UserError("train.tokens: the campaign needs a token budget; pass --tokens or --steps")
    if settings.shrink_dp_min is not None and settings.shrink_dp_min >= job.layout.dp:
        raise UserError(f"campaign.shrink_dp_min (--shrink-dp-min): {settings.shrink_dp_min} "
                        f"is not below layout.dp ({job.layout.dp})")
    step = step or Fixed(pred.step_time_s)
    eval_steps = settings.eval_iters * forward_share(pred) if settings.eval_every else 0.0
    per_step = eval_steps / settings.eval_every if settings.eval_every else 0.0
    step_s = step.p50 * (1.0 + per_step)  # a step with its share of the evaluations
    write_s, restore = checkpoint_write_s(job), restore_cost(job)
    overhead = cluster.campaign.startup_s + restore.seconds(job.layout.dp)
    elapse_s = (settings.elapse_h or default_elapse_h(pred)) * 3600.0
    model = NodeFailures(cluster.mtbf_node_h * 3600.0, cluster.campaign.failure_shape)
    fits = fit_steps(elapse_s, overhead, write_s, step_s)
    interval = checkpoint_interval(settings, write_s, model.mean_s(job.nodes), step_s, fits)
    check_fits(interval, fits, elapse_s, overhead, steps, step_s)
    wait = cluster.campaign.queue_wait_h
    plan = CampaignPlan(
        steps=steps, step=step, nodes=job.nodes, dp=job.layout.dp,
        checkpoint_every=interval.steps, write_s=write_s,
        eval_every=settings.eval_every, eval_steps=eval_steps,
        startup_s=cluster.campaign.startup_s, restore=restore, elapse_s=elapse_s,
        queue=queue_wait(wait.p50_h, wait.p90_h) if queue else Fixed(0.0),
        failures=model if failures else NoFailures(),
        spare_nodes=settings.spare_nodes, shrink_dp_min=settings.shrink_dp_min,
        shrink_factor=repredicted_shrink(pred)
        if shrink == "repredict" and settings.shrink_dp_min is not None else None,
    )
    return plan, interval
