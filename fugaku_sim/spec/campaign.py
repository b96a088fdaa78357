"""The campaign above the step: what every job of a chain pays, and how a planner runs it.

Two models:

- :class:`CampaignProfile` (``ClusterSpec.campaign``): facts of the machine and its site that
  a chain of jobs meets outside the training step: the rate at which a restarting job reads
  its checkpoint, the fixed start-up of every job, the shape of the time between failures and
  the queue wait. Three related facts stay where ``predict``'s Young/Daly term already reads
  them: the node MTBF (``ClusterSpec.mtbf_node_h``), the checkpoint write rate
  (``ClusterSpec.checkpoint_write_GBps``) and the elapsed limit of a job (its resource group's
  ``allocation.resource_groups[].max_elapse_h``, else ``scheduler.max_elapse_h``).
- :class:`CampaignSettings` (a model preset's ``campaign:`` section; the options of
  ``fugaku-sim campaign`` override single fields): evaluation and checkpoint intervals, the
  elapsed time asked per job, spare nodes, shrinking data parallelism after a failure.
  Interval semantics follow the trainer's (``train/run_plan.py``): after step s an
  evaluation runs when s is a multiple of ``eval_every``, then a checkpoint when s is a
  multiple of ``checkpoint_every``; both also run after the last step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.limits import FILESYSTEM_BW_GBPS, at_most

#: checkpoint interval policies other than a fixed number of steps
INTERVAL_RULES = ("young", "daly")


class QueueWait(SpecModel):
    """Time a job waits in the queue, hours: lognormal through its median and 90th percentile.

    Both zero means no wait.
    """

    p50_h: float = Field(default=0.0, ge=0, description="median wait, hours")
    p90_h: float = Field(default=0.0, ge=0, description="90th percentile of the wait, hours")

    @model_validator(mode="after")
    def _ordered(self) -> QueueWait:
        if self.p90_h < self.p50_h:
            raise ValueError(f"p90_h: {self.p90_h} is below p50_h ({self.p50_h})")
        if self.p50_h == 0 and self.p90_h > 0:
            raise ValueError("p50_h: a lognormal wait needs a positive median when p90_h > 0")
        return self


class CampaignProfile(SpecModel):
    """What a chain of jobs pays on this machine outside the training step."""

    checkpoint_read_GBps: Annotated[float, at_most(FILESYSTEM_BW_GBPS)] = Field(
        default=100.0, gt=0,
        description="aggregate rate at which a restarting job reads its checkpoint, 1e9 B/s",
    )
    startup_s: float = Field(
        default=0.0, ge=0,
        description="fixed start-up of every job and in-job restart before the checkpoint is "
        "read: launch, loading Python and the framework on every node, communicators",
    )
    failure_shape: float = Field(
        default=1.0, gt=0,
        description="Weibull shape of the time between failures (1: exponential; below 1: "
        "failures come in bursts)",
    )
    queue_wait_h: QueueWait = Field(default_factory=QueueWait)

    @property
    def checkpoint_read_Bps(self) -> float:
        return self.checkpoint_read_GBps * 1e9


Steps = Annotated[int, Field(gt=0)]


class CampaignSettings(SpecModel):
    """How a run is chained into jobs: the production settings a planner starts from."""

    eval_every: Steps | None = Field(
        default=None, description="steps between evaluations (none: no evaluation)"
    )
    eval_iters: int = Field(default=1, gt=0, description="forward-only global batches each")
    checkpoint_every: Steps | Literal["young", "daly"] | None = Field(
        default="young",
        description="steps between checkpoints, or 'young'/'daly' for the optimum interval "
        "for the job's failure rate (none: only at the end)",
    )
    elapse_h: float | None = Field(
        default=None, gt=0,
        description="elapsed limit asked per job, hours (none: the limit of the job's "
        "resource group, else scheduler.max_elapse_h)",
    )
    spare_nodes: int = Field(
        default=0, ge=0,
        description="nodes allocated beyond the layout's; a failure with a spare left "
        "restarts within the job instead of requeueing",
    )
    shrink_dp_min: Steps | None = Field(
        default=None,
        description="on a failure with no spare left, drop the failed data-parallel replica "
        "and continue, down to this many replicas (none: end the job and requeue)",
    )
