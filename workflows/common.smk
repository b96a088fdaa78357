# Shared by every rules file: the validated config, what follows from it, and the helpers
# the rules call. Nothing here runs a job.

import json
import os
import shlex

from fugaku_sim.spec import load_cluster, load_model
from fugaku_sim.workflow.allocation import run_allocation
from fugaku_sim.workflow.config import check_workflow_config, fixed_layout, stop_on_config_error
from fugaku_sim.workflow.launch import cli_command, resolve_launcher
from fugaku_sim.workflow.rundir import work_folder


with stop_on_config_error():  # one line, before any job runs (the data stage takes minutes)
    CFG = check_workflow_config(config, workflow.configfiles)

FS = cli_command()  # `<this venv's python> -m fugaku_sim.cli`: works without the venv on PATH
FS1 = cli_command(single_thread=True)  # the same with one BLAS thread per process
RUN = CFG.run_name
ENV = "envs/fugaku-sim.yaml"  # relative to workflows/, where the rules live

TRAIN_VOCAB = load_model(CFG.train.model).vocab
AUTO_LAYOUT = CFG.train.layout == "auto"
TRAIN_ALLOCATION = run_allocation(
    load_cluster(CFG.train.cluster),
    CFG.train.ranks,
    None if AUTO_LAYOUT else CFG.train.layout.processes_per_node,  # a fixed layout's wins
)
FIXED_LAYOUT = fixed_layout(CFG.train, TRAIN_ALLOCATION.processes_per_node)


def json_arg(section):
    """A config section as one shell-quoted JSON argument (a rule reruns when it changes)."""
    payload = section if isinstance(section, dict) else section.model_dump(mode="json")
    return shlex.quote(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def mpi_launcher(wildcards, resources):
    """The profile's MPI launcher, a bare mpiexec made absolute (the venv need not be on PATH)."""
    return resolve_launcher(str(resources.mpi))


def work_folder_of(name):
    """A params function: the trainer's work folder beside input/output `name`'s folder."""
    folder = folder_of(name)

    def work(wildcards, input, output):
        return str(work_folder(folder(wildcards, input, output)))

    return work


def folder_of(name, up=1):
    """A params function: the folder `up` levels above input/output `name` (e.g. "output.json").

    Rules pass folders derived from their declared files rather than hard-coded prefixes, so
    the paths follow the files (and `snakemake --lint` is satisfied).
    """
    kind, _, key = name.partition(".")

    def folder(wildcards, input, output):
        files = input if kind == "input" else output
        path = getattr(files, key) if key else files[0]
        for _ in range(up):
            path = os.path.dirname(path)
        return path

    return folder
