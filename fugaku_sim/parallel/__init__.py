"""Pure parallel-layout arithmetic shared by the simulator and the trainer."""

from fugaku_sim.parallel.groups import RankCoords, RankGrid
from fugaku_sim.parallel.partition import (
    ModelChunk,
    shard_range,
    stage_chunks,
    stage_layers,
    stage_of_virtual,
    virtual_stage,
)
from fugaku_sim.parallel.schedule import PipelineOp, max_in_flight, pipeline_schedule

__all__ = [
    "ModelChunk",
    "PipelineOp",
    "RankCoords",
    "RankGrid",
    "max_in_flight",
    "pipeline_schedule",
    "shard_range",
    "stage_chunks",
    "stage_layers",
    "stage_of_virtual",
    "virtual_stage",
]
