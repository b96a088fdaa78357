"""The typed spec shared by the simulator and the trainer.

What (``ModelSpec``), how (``TrainSpec``, ``Layout``) and where (``ClusterSpec``) live in
separate models and are mixed at the command line into a checked :class:`Job`.
"""

from fugaku_sim.spec.cluster import ClusterSpec, NodeSpec, SwitchedInterconnect, TorusInterconnect
from fugaku_sim.spec.job import Job, check_job_shape, make_job
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.load import (
    ModelPreset,
    load_cluster,
    load_model,
    load_model_preset,
    read_yaml,
    validate_section,
)
from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.spec.train import TrainSpec

__all__ = [
    "ClusterSpec",
    "Job",
    "Layout",
    "ModelPreset",
    "ModelSpec",
    "NodeSpec",
    "SwitchedInterconnect",
    "TorusInterconnect",
    "TrainSpec",
    "check_job_shape",
    "load_cluster",
    "load_model",
    "load_model_preset",
    "make_job",
    "read_yaml",
    "validate_section",
]
