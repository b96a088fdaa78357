"""``fugaku-sim campaign``: the whole run as a chain of jobs, sampled over many seeds.

Predicts the step with its p10/p50/p90 (from the profile's assumed ranges and the stack's
fitted intervals; ``--no-step-interval`` takes its single value) or takes ``--step-time-s``, derives what every job pays outside it from
the cluster profile (start-up, restore, checkpoint writes, evaluations, failures, queue
waits), runs the Monte Carlo and prints p10/p50/p90 of the wall time to the token target,
node-hours, work lost, jobs and failures (a table, or ``--json``). The model preset's
``campaign:`` section (Fugaku-LLM's production settings) is the starting point; the policy
options override single fields of it. ``--plot`` draws one sampled campaign as a Gantt chart
and the finish times of all seeds.

``--json`` prints one object: the job (cluster, model, nodes, allocated_nodes, tp, pp, dp,
tokens, steps), ``step_time_s`` (a number, or p10/p50/p90 when ``--step-time-s`` gives three),
the resolved ``policy``, ``costs_s`` (startup, restore, checkpoint_write, evaluation),
``system_mtbf_h``, ``failure_shape``, ``queue_wait_h``, ``failure_free_days`` and predict's
``predict_time_to_train_days``; then, each as p10/p50/p90/mean (null when a campaign did not
finish), ``wall_days``, ``node_hours``, ``lost_h``, ``jobs``, ``failures``, ``step_s``, with
``mean_parts_h`` (queue, startup, train, eval, checkpoint, lost), ``seeds``,
``finished_fraction`` and, with ``--start-date``, ``finish_date``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fugaku_sim.commands.common import (
    add_job_arguments,
    command_meta,
    count,
    job_from_args,
    positive_int,
    positive_number,
    print_json,
    whole_number,
)
from fugaku_sim.errors import UserError
from fugaku_sim.spec.campaign import CampaignSettings
from fugaku_sim.spec.record import LayoutRecord

if TYPE_CHECKING:  # the simulator is imported when the verb runs, not when the CLI starts
    from fugaku_sim.sim.campaign import CampaignPlan
    from fugaku_sim.sim.campaign_costs import Interval
    from fugaku_sim.sim.distributions import Duration
    from fugaku_sim.sim.montecarlo import CampaignSummary
    from fugaku_sim.sim.predict import Prediction


#: most campaigns one call samples: 100x the default; 1,000 take about 10 s
MAX_SEEDS = 100_000


def _seeds(text: str) -> int:
    return whole_number(text, 1, MAX_SEEDS)


def _interval(text: str) -> int | str | None:
    """Steps, or a rule (young, daly), or none."""
    if text in ("young", "daly"):
        return text
    if text == "none":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a positive number of steps, young, daly or none") from None


def _evals(text: str) -> int | None:
    return None if text == "none" else positive_int(text)


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date like 2024-01-15 or 2024-01-15T09:00") from None


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """The campaign policy options (``campaign`` and ``plan``): each overrides one field of
    the model preset's ``campaign:`` section (absent from the namespace when not given)."""
    c = parser.add_argument_group("campaign policy (overrides the model preset's campaign)",
                                  argument_default=argparse.SUPPRESS)
    c.add_argument("--checkpoint-every", type=_interval, metavar="N|young|daly|none",
                   help="steps between checkpoints, or the Young/Daly optimum for the job's "
                   "failure rate")
    c.add_argument("--eval-every", type=_evals, metavar="N|none", help="steps between evaluations")
    c.add_argument("--eval-iters", type=positive_int, help="global batches per evaluation")
    c.add_argument("--elapse-h", type=positive_number,
                   help="elapsed limit per job, hours (default: the cluster's resource group)")
    c.add_argument("--spare-nodes", type=count, help="nodes allocated beyond the layout's")
    c.add_argument("--shrink-dp-min", type=positive_int, metavar="N",
                   help="after a failure with no spare left, drop the failed data-parallel "
                   "replica and go on, down to N replicas (default: requeue)")
    c.add_argument("--shrink-step", choices=["repredict", "scale"], default="repredict",
                   help="step time after shrinking: re-predicted with the busiest replica's "
                   "micro-batches (default), or scaled by dp/dp'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    add_policy_arguments(parser)
    w = parser.add_argument_group("what-if")
    w.add_argument("--step-time-s", type=positive_number, nargs="+", metavar="S",
                   help="step time instead of the prediction: P50, or P10 P50 P90")
    w.add_argument("--step-interval", action=argparse.BooleanOptionalAction, default=True,
                   help="sample the step time from the prediction's p10/p50/p90 (the "
                   "profile's assumed ranges and the stack's fitted intervals; default), or "
                   "take its single value")
    w.add_argument("--mtbf-node-h", type=positive_number, help="node MTBF, hours (profile's otherwise)")
    w.add_argument("--no-failures", action="store_true", help="nodes never fail")
    w.add_argument("--no-queue", action="store_true", help="jobs start when submitted")
    r = parser.add_argument_group("sampling and output")
    r.add_argument("--seeds", type=_seeds, default=1000, help="campaigns to sample")
    r.add_argument("--first-seed", type=count, default=0, help="seed of the first campaign")
    r.add_argument("--start-date", type=_date, metavar="DATE",
                   help="submission of the first job (ISO date): finish dates too")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--plot", metavar="FILE",
                   help="PNG: one sampled campaign as a Gantt chart, and the finish times")


#: policy options, named as the CampaignSettings fields they override
POLICY = ("checkpoint_every", "eval_every", "eval_iters", "elapse_h", "spare_nodes",
          "shrink_dp_min")


def resolve_settings(args: argparse.Namespace) -> CampaignSettings:
    """The preset's campaign section with the policy options given on top.

    Raises:
        SpecError: naming the ``campaign.`` field.
    """
    from fugaku_sim.spec import load_model_preset, validate_section

    settings = dict(load_model_preset(args.model).campaign)
    settings.update({k: getattr(args, k) for k in POLICY if hasattr(args, k)})  # given ones
    return validate_section(CampaignSettings, settings, "", "campaign")


def step_distribution(values: list[float] | None) -> Duration | None:
    """``--step-time-s``: one value (fixed) or three (p10 p50 p90)."""
    from fugaku_sim.sim.distributions import Fixed, Quantiles

    if values is None:
        return None
    if len(values) == 1:
        return Fixed(values[0])
    if len(values) != 3 or not values[0] <= values[1] <= values[2]:
        raise UserError("--step-time-s: give P50, or P10 P50 P90 in increasing order")
    return Quantiles(*values)


def predicted_step_distribution(pred: Prediction, setup: Any) -> Duration | None:
    """The prediction's p10/p50/p90 step time as the campaign's step distribution (None,
    the single value, when the inputs leave no spread)."""
    from fugaku_sim.sim.intervals import predict_intervals

    q = predict_intervals(pred, setup).step_time_s
    return q if q.p10 < q.p90 else None


def _quantile_dates(q: dict[str, float | None], start: datetime) -> dict[str, str | None]:
    return {k: None if v is None else f"{start + timedelta(days=v):%Y-%m-%d %H:%M}"
            for k, v in q.items() if k != "mean"}


def campaign_json(pred: Prediction, settings: CampaignSettings, plan: CampaignPlan,
                  interval: Interval, summary: CampaignSummary,
                  start: datetime | None) -> dict[str, Any]:
    """The verb's JSON object: the job, the resolved policy, the costs, the spread."""
    from fugaku_sim.sim.distributions import Quantiles

    job, lay = pred.job, pred.job.layout
    step, queue = plan.step, plan.queue
    out: dict[str, Any] = {
        "cluster": job.cluster.name, "model": job.model.name,
        "nodes": job.nodes, "allocated_nodes": plan.allocated_nodes,
        "tp": lay.tp, "pp": lay.pp, "dp": lay.dp,
        "tokens": job.train.tokens, "steps": plan.steps,
        "step_time_s": ({"p10": step.p10, "p50": step.p50, "p90": step.p90}
                        if isinstance(step, Quantiles) else step.p50),
        "predicted_step_time_s": pred.step_time_s,
        "policy": {
            "checkpoint_every": interval.steps, "checkpoint_rule": interval.rule,
            "eval_every": settings.eval_every, "eval_iters": settings.eval_iters,
            "elapse_h": plan.elapse_s / 3600.0, "spare_nodes": plan.spare_nodes,
            "shrink_dp_min": plan.shrink_dp_min,
        },
        "costs_s": {
            "startup": plan.startup_s, "restore": plan.restore.seconds(lay.dp),
            "checkpoint_write": plan.write_s, "evaluation": plan.eval_steps * step.p50,
        },
        "system_mtbf_h": plan.failures.mean_s(job.nodes) / 3600.0,
        "failure_shape": job.cluster.campaign.failure_shape,
        "queue_wait_h": {"p50": queue.p50 / 3600.0,
                         "p90": (queue.p90 if isinstance(queue, Quantiles) else queue.p50) / 3600},
        "failure_free_days": plan.steps * step.p50 / 86400.0,
        "predict_time_to_train_days": pred.to_json()["time_to_train_days"],
    }
    out.update(summary.to_json())
    if start is not None:
        out["start_date"] = f"{start:%Y-%m-%d %H:%M}"
        out["finish_date"] = _quantile_dates(out["wall_days"], start)
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "not finished" if value is None else f"{value:,.{digits}f}"


def print_campaign(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 100)  # five columns of figures: do not squeeze them
    pol, costs = d["policy"], d["costs_s"]
    head = Table(title=f"{d['model']} on {d['nodes']:,} nodes of {d['cluster']}: "
                 f"{d['steps']:,} steps", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    every = pol["checkpoint_every"]
    rows = [
        ("tp x pp x dp", f"{d['tp']} x {d['pp']} x {d['dp']} ({d['allocated_nodes']:,} "
                         "nodes allocated)"),
        ("step time", f"{d['step_time_s']:.3f} s" if not isinstance(d["step_time_s"], dict) else
         " / ".join(f"{v:.3f}" for v in d["step_time_s"].values()) + " s (p10/p50/p90)"),
        ("checkpoint", f"every {every:,} steps ({pol['checkpoint_rule']}), "
                       f"{costs['checkpoint_write']:.1f} s each" if every else "at the end only"),
        ("evaluation", f"every {pol['eval_every']} steps x {pol['eval_iters']}, "
                       f"{costs['evaluation']:.1f} s each" if pol["eval_every"] else "none"),
        ("job", f"elapse {pol['elapse_h']:g} h; start-up {costs['startup']:.0f} s, "
                f"restore {costs['restore']:.0f} s"),
        ("failures", f"system MTBF {d['system_mtbf_h']:,.1f} h (Weibull shape "
                     f"{d['failure_shape']:g}); spares {pol['spare_nodes']}, shrink to dp "
                     f"{pol['shrink_dp_min'] or '-'}"),
    ]
    for k, v in rows:
        head.add_row(k, v)
    console.print(head)
    t = Table(title=f"campaign over {d['seeds']:,} seeds ({d['finished_fraction']:.0%} finished)")
    for col in ("", "p10", "p50", "p90", "mean"):
        t.add_column(col, justify="right" if col else "left")
    for key, label, digits in (("wall_days", "days to the token target", 2),
                               ("node_hours", "node-hours", 0), ("lost_h", "work lost, hours", 1),
                               ("jobs", "jobs", 1), ("failures", "failures", 1)):
        q = d[key]
        t.add_row(label, *(_fmt(q[k], digits) for k in ("p10", "p50", "p90", "mean")))
    if "finish_date" in d:
        t.add_row("finish date", *(v or "-" for v in d["finish_date"].values()), "")
    console.print(t)
    parts = d["mean_parts_h"]
    wall = sum(parts.values()) or 1.0
    console.print("mean hours: " + ", ".join(
        f"{k} {v:,.1f} ({v / wall:.1%})" for k, v in parts.items()))
    console.print(f"predict's single number: {d['predict_time_to_train_days']:.2f} days; "
                  f"failure-free at the campaign's median step: {d['failure_free_days']:.2f} days")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fugaku_sim.progress import Progress
    from fugaku_sim.sim.campaign import simulate
    from fugaku_sim.sim.campaign_costs import plan_campaign
    from fugaku_sim.sim.montecarlo import run_campaigns
    from fugaku_sim.sim.predict import predict, prepare

    settings = resolve_settings(args)
    step = step_distribution(args.step_time_s)
    job = job_from_args(args)
    if args.mtbf_node_h is not None:
        job = replace(job, cluster=job.cluster.with_given({"mtbf_node_h": args.mtbf_node_h}))
    setup = prepare(job)
    pred = predict(job, setup=setup)
    if step is None and args.step_interval:
        step = predicted_step_distribution(pred, setup)
    plan, interval = plan_campaign(pred, settings, step=step, failures=not args.no_failures,
                                   queue=not args.no_queue, shrink=args.shrink_step)
    with Progress("campaign") as progress:
        summary = run_campaigns(plan, args.seeds, args.first_seed,
                                progress=lambda n: progress.update(n, args.seeds, "seeds"))
    doc = campaign_json(pred, settings, plan, interval, summary, args.start_date)
    if args.plot:
        from fugaku_sim.sim.campaign_plots import plot_campaign

        sample = simulate(plan, np.random.default_rng(summary.median_seed()), trace=True)
        plot_campaign(sample, summary, Path(args.plot),
                      f"{job.model.name} on {job.nodes:,} nodes of {job.cluster.name}",
                      args.start_date, doc["predict_time_to_train_days"])
    if args.json:
        print_json(doc, command_meta(args, record=LayoutRecord(job.layout, job.train).to_json()))
    else:
        print_campaign(doc)
    return 0
