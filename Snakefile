"""fugaku-sim: the whole build, from raw text to a release, with the plan before the run and
the check of its prediction after.

    snakemake --cores 2                                   # the built-in defaults
    snakemake --cores 2 --configfile workflows/config/ci.yaml
    snakemake --profile workflows/profiles/slurm          # or .../fugaku
    snakemake --cores 2 compare                           # calibrate + validate this machine

The config is checked against workflows/config/schema.json (generated from the pydantic
models in fugaku_sim.workflow.config) and then against the models themselves, before any job
runs. Every rule calls a `fugaku-sim` verb; outputs go to results/<stage>/, logs to
logs/<stage>/.
"""

import json
import shlex
import sys

from snakemake.utils import min_version

from fugaku_sim.errors import UserError
from fugaku_sim.spec import load_cluster, load_model
from fugaku_sim.workflow.config import check_against_schema, load_workflow_config
from fugaku_sim.workflow.launch import cli_command, resolve_launcher

min_version("9.19")


configfile: "workflows/config/default.yaml"


try:
    check_against_schema(config, "config")
    CFG = load_workflow_config(config, "config")
except UserError as exc:
    sys.exit(f"fugaku-sim workflow: config error: {exc}")

FS = cli_command()
RUN = CFG.run_name
ENV = "envs/fugaku-sim.yaml"  # relative to workflows/, where the rules live

try:
    TRAIN_CLUSTER = load_cluster(CFG.train.cluster)
    TRAIN_VOCAB = load_model(CFG.train.model).vocab
except UserError as exc:
    sys.exit(f"fugaku-sim workflow: config error: train: {exc}")
if TRAIN_CLUSTER.allocation.max_nodes == 1:
    # one machine: every rank on it, however many cores it has
    TRAIN_NODES, TRAIN_PPN = 1, CFG.train.ranks
else:
    TRAIN_PPN = TRAIN_CLUSTER.node.processes_per_node
    TRAIN_NODES = -(-CFG.train.ranks // TRAIN_PPN)
AUTO_LAYOUT = CFG.train.layout == "auto"
FIXED_LAYOUT = {} if AUTO_LAYOUT else CFG.train.layout
LAYOUT_SOURCE = (
    "results/plan/train_plan.json" if AUTO_LAYOUT else "results/plan/train_layout_fixed.json"
)


def json_arg(section):
    """A config section as one shell-quoted JSON argument (a rule reruns when it changes)."""
    payload = section if isinstance(section, dict) else section.model_dump(mode="json")
    return shlex.quote(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def mpi_launcher(wildcards, resources):
    """The profile's MPI launcher, a bare mpiexec made absolute (the venv need not be on PATH)."""
    return resolve_launcher(str(resources.mpi))


include: "workflows/data.smk"
include: "workflows/plan.smk"
include: "workflows/train.smk"
include: "workflows/evaluate.smk"
include: "workflows/release.smk"
include: "workflows/compare.smk"


rule all:
    input:
        "results/data/manifest.json",
        "results/plan/plan.json",
        "results/plan/plan.png",
        "results/plan/train_prediction.json",
        "results/train/metrics.jsonl",
        "results/train/loss.png",
        "results/eval/eval.json",
        f"results/release/{RUN}/SHA256SUMS",
        f"results/release/{RUN}.verified",
        "results/compare/run/compare.json",
    default_target: True
