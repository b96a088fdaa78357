"""The chain of jobs a run is submitted as: how many, how long each, how many steps each.

A run longer than a job's elapsed limit is a chain: every job asks for the same elapsed time,
trains ``steps_per_job`` steps (``fugaku-sim train --steps-per-job``), writes a checkpoint and
ends; the next resumes from the newest checkpoint (``--resume auto``). The numbers come from
the campaign of the layout (:func:`fugaku_sim.sim.campaign_costs.plan_campaign`, the same
policy the plan priced):

- elapsed time per job: the campaign's (its resource group's limit unless asked otherwise);
- steps per job: what fits in :data:`TRAIN_SHARE` of the time left after start-up and restore,
  at the predicted step with its share of the evaluations and the periodic checkpoint writes,
  less the final write. The tenth kept back absorbs a step slower than predicted; a job that
  still reaches its limit loses only the work since its last periodic checkpoint;
- jobs: enough for the steps, ``ceil(steps / steps_per_job)``, or the campaign's p90 job count
  when failures make that larger (a failure ends a job early and the next one redoes its
  work). A job that finds the run complete (the trainer's ``summary.json``) ends at once, so
  jobs to spare cost only their queue wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fugaku_sim.errors import UserError
from fugaku_sim.sim.campaign import CampaignPlan
from fugaku_sim.sim.campaign_costs import Interval
from fugaku_sim.sim.montecarlo import CampaignSummary
from fugaku_sim.spec.campaign import CampaignSettings

#: share of a job's time after start-up and restore planned for training
TRAIN_SHARE = 0.9


@dataclass(frozen=True)
class Chain:
    """A run as a chain of identical jobs (``jobs`` = 1: one job runs it all)."""

    steps: int
    jobs: int
    elapse_s: float | None  # None: no limit (a local run)
    steps_per_job: int | None  # None: the whole run in one job
    checkpoint_every: int | None
    eval_every: int | None
    eval_iters: int
    why: str  # how the job count was chosen, for the script's header


def steps_per_job(plan: CampaignPlan) -> int:
    """Steps one job of ``plan`` trains (see the module docstring).

    Raises:
        UserError: not one step fits in a job.
    """
    overhead = plan.startup_s + plan.restore.seconds(plan.dp)
    usable = (plan.elapse_s - overhead) * TRAIN_SHARE - plan.write_s
    step = plan.step.p50 * (1.0 + (plan.eval_steps / plan.eval_every if plan.eval_every else 0.0))
    step += plan.write_s / plan.checkpoint_every if plan.checkpoint_every else 0.0
    fits = math.floor(usable / step) if usable > 0 else 0
    if fits < 1:
        raise UserError(f"--elapse-h: {plan.elapse_s / 3600:g} h leaves no time for a step after "
                        f"start-up and restore ({overhead / 3600:.2f} h)")
    return min(fits, plan.steps)


def campaign_chain(plan: CampaignPlan, interval: Interval, settings: CampaignSettings,
                   summary: CampaignSummary) -> Chain:
    """The chain of a batch machine's run, from its campaign."""
    per_job = steps_per_job(plan)
    needed = math.ceil(plan.steps / per_job)
    p90 = summary.quantiles("jobs")["p90"]
    jobs = max(needed, int(p90) if math.isfinite(p90) else needed)
    why = (f"{needed} for {plan.steps:,} steps at {per_job:,} a job"
           + (f"; {jobs} = the campaign's p90 job count (failures)" if jobs > needed else ""))
    return Chain(plan.steps, jobs, plan.elapse_s, per_job if needed > 1 else None,
                 interval.steps, settings.eval_every, settings.eval_iters, why)


def single_job(steps: int, settings: CampaignSettings) -> Chain:
    """The whole run in one job (a machine without a batch system's limit)."""
    every = settings.checkpoint_every if isinstance(settings.checkpoint_every, int) else None
    return Chain(steps, 1, None, None, every, settings.eval_every, settings.eval_iters,
                 "one job: no elapsed limit")
