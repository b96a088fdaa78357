"""Layout: the parallel plan ("how") — degrees, schedule, rank order and placement."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fugaku_sim.parallel.groups import RANK_ORDERS, RankGrid
from fugaku_sim.parallel.placement import Strategy
from fugaku_sim.parallel.schedule import ScheduleKind
from fugaku_sim.spec.base import SpecModel

#: how a layout may ask the batch system for its nodes (unset: the tool chooses)
RequestedAllocation = Literal["torus", "noncont"]


class Layout(SpecModel):
    """How ranks split the work: tensor (tp), pipeline (pp) and data (dp) parallel degrees.

    ``rank_order`` lists the axes fastest-varying first; Megatron's default is ``tp-dp-pp``
    (tensor-parallel peers on consecutive ranks). ``placement`` maps ranks onto the job's
    node coordinates: ``linear`` in rank order, or ``topology`` (tensor groups on rings of
    neighbouring nodes, pipeline neighbours adjacent, data-parallel rings along torus axes).
    ``job_shape`` is the requested virtual shape (``[48, 6, 48]`` for ``node=48x6x48``).
    ``allocation`` is how the job asks the batch system for its nodes: ``torus``, a block of
    whole allocation units in that shape (``node=48x6x48:torus``); ``noncont``, a node count
    placed wherever nodes are free (``node=64:noncont``, Fugaku's small resource groups);
    unset, the tool chooses: a torus shape when one of whole units fits the node count, else
    ``noncont`` where the machine allows it, else a torus of the smallest whole-unit block.
    ``sequence_parallel`` (Korthikanti et al. 2022, section 4.2.2) shards the layer norms,
    dropouts and residual adds along the sequence over the tensor group, whose all-reduces
    become reduce-scatter and all-gather pairs.
    """

    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    schedule: ScheduleKind = "1f1b"
    virtual_stages: int = Field(default=1, gt=0, description="model chunks per stage")
    rank_order: str = "tp-dp-pp"
    placement: Strategy = "topology"
    job_shape: list[int] | None = None
    allocation: RequestedAllocation | None = None
    processes_per_node: int | None = Field(default=None, gt=0)
    sequence_parallel: bool = False

    @field_validator("rank_order")
    @classmethod
    def _known_order(cls, value: str) -> str:
        if value not in RANK_ORDERS:
            raise ValueError(f"{value!r} is not one of {', '.join(RANK_ORDERS)}")
        return value

    @field_validator("job_shape")
    @classmethod
    def _positive_shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(v <= 0 for v in value)):
            raise ValueError("every extent must be a positive integer")
        return value

    @model_validator(mode="after")
    def _schedule_chunks(self) -> Layout:
        if self.schedule != "interleaved" and self.virtual_stages != 1:
            raise ValueError("virtual_stages: only the interleaved schedule uses model chunks")
        return self

    @property
    def world(self) -> int:
        """Number of ranks (MPI processes)."""
        return self.tp * self.pp * self.dp

    @property
    def grid(self) -> RankGrid:
        """The tp x pp x dp grid of ranks in this layout's rank order (shared groups)."""
        return RankGrid(self.tp, self.pp, self.dp, self.rank_order)
