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

import sys

from snakemake.utils import min_version, validate

from fugaku_sim.errors import UserError
from fugaku_sim.workflow.config import load_workflow_config
from fugaku_sim.workflow.launch import cli_command, resolve_launcher

min_version("9.19")


configfile: "workflows/config/default.yaml"


validate(config, "workflows/config/schema.json")
try:
    CFG = load_workflow_config(config, "config")
except UserError as exc:
    sys.exit(f"fugaku-sim workflow: config error: {exc}")

FS = cli_command()
RUN = CFG.run_name
ENV = "workflows/envs/fugaku-sim.yaml"


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
        "results/train/metrics.jsonl",
        "results/eval/eval.json",
        f"results/release/{RUN}/SHA256SUMS",
        f"results/release/{RUN}.verified",
        "results/compare/run.json",
    default_target: True
