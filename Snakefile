"""fugaku-sim: the whole build, from raw text to a release, with the plan before the run and
the check of its prediction after.

    snakemake --cores 2                                   # the built-in defaults
    snakemake --cores 2 --configfile workflows/config/ci.yaml
    snakemake --profile workflows/profiles/slurm          # or .../fugaku
    snakemake --cores 2 compare                           # calibrate + validate this machine
    snakemake --report report.html                        # after a run: curves, tables, plots

The config is checked against workflows/config/schema.json (generated from the pydantic
models in fugaku_sim.workflow.config) and then against the models themselves, before any job
runs (workflows/common.smk). Snakemake reads --configfile itself, before this file runs: a
YAML alias bomb of mappings there is expanded by Snakemake, out of this workflow's reach. Every rule calls a `fugaku-sim` verb; outputs go to
results/<stage>/, logs to logs/<stage>/.
"""

from snakemake.utils import min_version

min_version("9.19")


# The report's first page: what the workflow does and how to read what it collects.
report: "workflows/report/workflow.rst"


from fugaku_sim.workflow.config import check_config_files, stop_on_config_error

# By absolute path: a relative one is looked up in the working directory, so with
# `-d DIR` the defaults would be silently skipped when --configfile is given.
DEFAULT_CONFIG = f"{workflow.basedir}/workflows/config/default.yaml"
# Snakemake's loader expands YAML aliases while it merges the file into the config and keeps
# the last of two equal keys: the defaults go through the spec's strict loader first.
with stop_on_config_error():
    check_config_files([DEFAULT_CONFIG])


configfile: DEFAULT_CONFIG


include: "workflows/common.smk"
include: "workflows/data.smk"
include: "workflows/plan.smk"
include: "workflows/train.smk"
include: "workflows/evaluate.smk"
include: "workflows/compare.smk"
include: "workflows/release.smk"


# Small bookkeeping steps run where Snakemake runs, not as batch jobs: on Fugaku or Slurm
# each job would otherwise wait in the queue for a second of work.
localrules:
    all,
    data_config,
    plan_table,
    plan_campaign,
    predict_reference,
    sensitivity_reference,
    train_settings,
    train_layout_fixed,
    train_layout,
    loss_plot,
    release_verify,


rule all:
    input:
        rules.data_mix.output.manifest,
        rules.plan_reference.output.plan,
        rules.plan_reference.output.plot,
        rules.plan_table.output.table,
        rules.plan_campaign.output.campaign,
        rules.predict_reference.output.fitted,
        rules.predict_reference.output.whatif,
        rules.sensitivity_reference.output.json,
        rules.predict_train.output.prediction,
        rules.predict_train.output.table,
        rules.train.output.metrics,
        rules.loss_plot.output.plot,
        rules.evaluate.output.json,
        rules.release.output.sums,
        rules.release_verify.output.verified,
        rules.compare_run.output.json,
    default_target: True
