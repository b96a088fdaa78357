"""Campaign: a training run as a chain of jobs (simpy; one time unit is one second).

The chain process submits a job, waits in the queue, and runs the job until the last step
is saved. A job runs a :class:`~fugaku_sim.sim.timeline.Run` and waits for whichever comes
first: the end of its work, its elapsed limit, or a failure of one of its nodes. Whatever
ends a run, the work since its last written checkpoint is lost. After a failure the job
restarts at once on a spare node if one is left (new start-up and restore, no queue), or
drops the failed data-parallel replica and continues (when shrinking is allowed), or ends;
the chain then submits the next job, which starts from the last checkpoint with every node
and spare again. Everything random is drawn from the one seeded generator: the step time
(once per campaign: its uncertainty is the prediction's, not noise from step to step), the
queue waits and the times to failure.

Time is accounted in six parts that sum to the wall time: queue, start-up (and restore),
train, evaluation and checkpoint of the work kept, and lost (work done after the last
checkpoint of an interrupted run). Node-hours count every allocated node (spares included)
from each job's start to its end; queue waits are free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from fugaku_sim.sim.distributions import Duration, FailureModel, Fixed, NoFailures
from fugaku_sim.sim.timeline import Run

#: runs after which a campaign is declared hopeless (failures outpace its checkpoints)
MAX_RUNS = 10_000
#: the parts of the wall time, in the order tables and plots show them
PARTS = ("queue", "startup", "train", "eval", "checkpoint", "lost")


@dataclass(frozen=True)
class Restore:
    """Seconds to read the checkpoint back: what every data-parallel replica reads (weights,
    and unsharded optimizer states) and what is read once (optimizer shards)."""

    per_replica_s: float = 0.0
    once_s: float = 0.0

    def seconds(self, dp: int) -> float:
        return dp * self.per_replica_s + self.once_s


@dataclass(frozen=True)
class CampaignPlan:
    """Everything a campaign needs, in steps and seconds.

    ``step`` is the time of one step at the full ``dp``; ``eval_steps`` the time of one
    evaluation in step times. ``shrink_factor(dp')`` is the time per step with ``dp'``
    replicas over the time with ``dp`` (default ``dp / dp'``: the same work on fewer
    replicas).
    """

    steps: int
    step: Duration
    nodes: int
    dp: int
    checkpoint_every: int | None = None
    write_s: float = 0.0
    eval_every: int | None = None
    eval_steps: float = 0.0
    startup_s: float = 0.0
    restore: Restore = Restore()
    elapse_s: float = math.inf
    queue: Duration = Fixed(0.0)
    failures: FailureModel = NoFailures()
    spare_nodes: int = 0
    shrink_dp_min: int | None = None
    shrink_factor: Callable[[int], float] | None = None

    def nodes_for(self, dp: int) -> int:
        """Nodes that ``dp`` of the ``self.dp`` replicas occupy (several replicas may share a
        node: whole nodes, rounded up)."""
        return math.ceil(self.nodes * dp / self.dp)

    @property
    def allocated_nodes(self) -> int:
        return self.nodes + self.spare_nodes

    def step_factor(self, dp: int) -> float:
        if dp == self.dp:
            return 1.0
        return self.shrink_factor(dp) if self.shrink_factor else self.dp / dp


@dataclass(frozen=True)
class LogEntry:
    who: str
    what: str
    t: float


@dataclass(frozen=True)
class Segment:
    """A stretch of one job's time (``kind`` is a part of :data:`PARTS`, or 'restore'); a mark
    ('checkpoint', 'failure', 'limit') when ``start == end``."""

    job: int
    kind: str
    start: float
    end: float


@dataclass
class CampaignResult:
    """One sampled campaign."""

    finished: bool
    wall_s: float
    node_s: float
    step_s: float
    jobs: int
    failures: int
    restarts: int
    shrinks: int
    parts_s: dict[str, float]
    log: list[LogEntry]
    trace: list[Segment]

    @property
    def wall_days(self) -> float:
        return self.wall_s / 86400.0

    @property
    def node_hours(self) -> float:
        return self.node_s / 3600.0 if self.finished else math.inf

    @property
    def lost_h(self) -> float:
        return self.parts_s["lost"] / 3600.0


Proc = Generator[simpy.Event, Any, Any]


class Campaign:
    """The simpy model of one campaign; :meth:`run` it once."""

    def __init__(self, plan: CampaignPlan, rng: np.random.Generator, tracing: bool = False):
        self.plan, self.rng, self.tracing = plan, rng, tracing
        self.env = simpy.Environment()
        self.step_s = plan.step.sample(rng)
        self.saved = 0
        self.jobs = self.runs = self.failures = self.restarts = self.shrinks = 0
        self.node_s = 0.0
        self.parts_s = dict.fromkeys(PARTS, 0.0)
        self.log: list[LogEntry] = []
        self.trace: list[Segment] = []

    def run(self) -> CampaignResult:
        done = self.env.process(self.chain())
        self.env.run(until=done)
        finished = self.saved >= self.plan.steps
        return CampaignResult(
            finished, self.env.now if finished else math.inf, self.node_s, self.step_s,
            self.jobs, self.failures, self.restarts, self.shrinks, self.parts_s, self.log,
            self.trace,
        )

    def note(self, who: str, what: str) -> None:
        self.log.append(LogEntry(who, what, self.env.now))

    def mark(self, kind: str, start: float, end: float | None = None) -> None:
        """Trace a mark (no ``end``) or a stretch (kept only when it lasts)."""
        if self.tracing and (end is None or end > start):
            self.trace.append(Segment(self.jobs, kind, start, start if end is None else end))

    def chain(self) -> Proc:
        """Submit jobs until the last step is saved (or the campaign is hopeless)."""
        while self.saved < self.plan.steps and self.runs < MAX_RUNS:
            self.jobs += 1
            who, submitted = f"job {self.jobs}", self.env.now
            self.note(who, "submit")
            yield self.env.timeout(self.plan.queue.sample(self.rng))
            self.parts_s["queue"] += self.env.now - submitted
            self.mark("queue", submitted, self.env.now)
            self.note(who, "start")
            yield self.env.process(self.job(who))

    def job(self, who: str) -> Proc:
        """Runs within one allocation until the work is saved, the limit, or a failure that
        neither a spare nor shrinking absorbs."""
        plan, start = self.plan, self.env.now
        end_by, spares, dp = start + plan.elapse_s, plan.spare_nodes, plan.dp
        while True:
            run = self.new_run(dp)
            failed = yield from self.wait_for_end(run, end_by, plan.nodes_for(dp))
            if not failed:
                break
            self.failures += 1
            self.note(who, "failure")
            if spares > 0:
                spares -= 1
                self.restarts += 1
                self.note(who, "restart")
            elif plan.shrink_dp_min is not None and dp - 1 >= plan.shrink_dp_min:
                dp -= 1
                self.shrinks += 1
                self.note(who, "shrink")
            else:
                self.note(who, "end")
                break
            if self.runs >= MAX_RUNS:
                break
        self.node_s += (self.env.now - start) * plan.allocated_nodes

    def new_run(self, dp: int) -> Run:
        plan = self.plan
        self.runs += 1
        step_s = self.step_s * plan.step_factor(dp)
        return Run(
            start=self.env.now,
            startup_s=plan.startup_s,
            restore_s=plan.restore.seconds(dp) if self.saved else 0.0,
            first=self.saved,
            total=plan.steps,
            step_s=step_s,
            eval_s=plan.eval_steps * step_s,
            write_s=plan.write_s,
            eval_every=plan.eval_every,
            checkpoint_every=plan.checkpoint_every,
        )

    def wait_for_end(self, run: Run, end_by: float, nodes: int) -> Proc:
        """Wait for the run's end, the limit or a failure; account the run; True if failed."""
        env, who = self.env, f"job {self.jobs}"
        ends = env.timeout(min(end_by, run.finish) - env.now)
        failure = env.timeout(self.plan.failures.sample(self.rng, nodes))
        fired = yield ends | failure
        failed = failure in fired and ends not in fired
        done = not failed and run.finish <= end_by
        saved = run.total if done else run.saved_by(env.now)
        self.close(run, saved)
        if done:
            self.note(who, "done")
        elif not failed:
            self.note(who, "limit")
            self.mark("limit", env.now)
        else:
            self.mark("failure", env.now)
        return failed

    def close(self, run: Run, saved: int) -> None:
        """Account the run's time up to now into the parts; keep its saved work."""
        t, parts = self.env.now, self.parts_s
        startup = min(max(t - run.start, 0.0), run.startup_s)
        restore = min(max(t - run.start - run.startup_s, 0.0), run.restore_s)
        kept = run.kept_s(saved) if saved > run.first else (0.0, 0.0, 0.0)
        kept_end = run.train_start + sum(kept)
        lost = max(t - kept_end, 0.0)
        for name, seconds in zip(("startup", "train", "eval", "checkpoint", "lost"),
                                 (startup + restore, *kept, lost)):
            parts[name] += seconds
        self.saved = saved
        if self.tracing:
            self.mark("startup", run.start, run.start + startup)
            self.mark("restore", run.start + startup, run.start + startup + restore)
            self.mark("train", run.train_start, kept_end)
            self.mark("lost", kept_end, kept_end + lost)
            for step in run.checkpoint_steps():
                if step <= saved:
                    self.mark("checkpoint", run.safe_at(step))


def simulate(plan: CampaignPlan, rng: np.random.Generator, trace: bool = False) -> CampaignResult:
    """Sample one campaign of ``plan``; ``trace`` keeps its segments for a Gantt chart."""
    return Campaign(plan, rng, trace).run()
