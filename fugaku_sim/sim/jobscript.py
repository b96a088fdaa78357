"""Job scripts, rank maps and submit scripts that run a predicted layout as a chain of jobs.

``plan --emit-job DIR`` writes, for the cluster's scheduler:

- ``layout.json``: the layout record (:mod:`fugaku_sim.spec.record`): the layout and training
  settings the prediction used, which the script's ``fugaku-sim train --layout-from
  layout.json`` runs, so the trainer runs what was priced;
- the job script (``job.pjm.sh``, ``job.sbatch.sh`` or ``job.local.sh``): one job of the chain
  (:mod:`fugaku_sim.sim.jobchain`). It goes to its folder, runs the profile's or user's setup
  line, ends at once when the run is complete (the trainer's ``summary.json``), and otherwise
  launches ``fugaku-sim train ... --resume auto --steps-per-job K`` with the campaign's
  checkpoint and evaluation intervals;
- the rank map: ``rankmap.vcoord`` for Fujitsu MPI (``mpiexec -vcoordfile FILE`` places rank i
  on the node whose virtual coordinates are on line i + 1, written ``(x,y,z)``; ranks sharing a
  node repeat its coordinates), ``rankmap.nodes`` for Slurm (the job node index of each rank;
  the script builds ``SLURM_HOSTFILE`` from it for ``srun --distribution=arbitrary``), both
  from the placement the prediction priced;
- ``submit.sh`` on a batch machine: submits the chain. PJM: step jobs (``pjsub --step``;
  Fugaku user guide 5.3): ``pjsub -z jid --step --sparam "sn=0"`` prints ``<id>_0``, each
  further sub-job ``pjsub --step --sparam "jid=<id>,sn=N,sd=ec==2:all:N-1"`` runs after the one
  before whatever its end (a job killed at its limit or by a failed node is resumed by the
  next), except that exit status 2 (bad input: the next would fail the same way) cancels the
  rest. Slurm: ``sbatch --parsable --dependency=afterany:<previous id>``.

The ``#PJM`` lines come from the one renderer (:func:`fugaku_sim.pjm.pjm_directives`): the
layout's node shape and resource group, the chain's elapsed time, the clock the profile's
peaks assume (``freq``, from ``node.clock_GHz``), the profile's ``job_resources`` (the power
knobs), processes, the user's group, LLIO volumes and options. Slurm: ``#SBATCH --nodes
--ntasks-per-node --time --partition --account``.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from fugaku_sim.errors import UserError
from fugaku_sim.io import write_json, write_text
from fugaku_sim.pjm import PjmRequest, pjm_directives
from fugaku_sim.sim.jobchain import Chain
from fugaku_sim.sim.predict import Prediction, prepare
from fugaku_sim.spec.cluster import SchedulerSpec
from fugaku_sim.timelimit import elapse_hms

#: the layout record beside the script, which its ``fugaku-sim train`` line reads
RECORD_FILE = "layout.json"
#: what the trainer writes only when the whole run is done
DONE_FILE = "summary.json"
#: exit status of a job that found bad input (fugaku_sim.errors): the chain stops there
BAD_INPUT_STATUS = 2


@dataclass(frozen=True)
class JobSettings:
    """What the scripts need beyond the prediction and the chain: where the trainer reads and
    writes (as the job sees it, relative to the script's folder or absolute) and the site's
    and user's scheduler settings (the profile's ``scheduler`` section with options on top)."""

    model_ref: str
    scheduler: SchedulerSpec
    data: str = "results/data"
    out: str = "results/train"


def vcoord_lines(pred: Prediction) -> list[str]:
    """One ``(x,y,z)`` line per rank, in rank order."""
    coords = prepare(pred.job).placement.node_coords()
    return ["(" + ",".join(str(int(v)) for v in row) + ")" for row in coords]


def node_index_lines(pred: Prediction) -> list[str]:
    """Job node index of every rank, in rank order (for Slurm's arbitrary distribution)."""
    return [str(int(n)) for n in prepare(pred.job).placement.node]


def train_command(settings: JobSettings, chain: Chain, record: str = RECORD_FILE) -> list[str]:
    """The ``fugaku-sim train`` invocation of one job of ``chain``."""
    cmd = ["fugaku-sim", "train", "--model", settings.model_ref, "--layout-from", record,
           "--data", settings.data, "--out", settings.out, "--resume", "auto", "--no-progress"]
    if chain.checkpoint_every is not None:
        cmd += ["--checkpoint-every", str(chain.checkpoint_every)]
    if chain.eval_every is not None:
        cmd += ["--eval-every", str(chain.eval_every), "--eval-iters", str(chain.eval_iters)]
    if chain.steps_per_job is not None:
        cmd += ["--steps-per-job", str(chain.steps_per_job)]
    return cmd


def job_name(pred: Prediction) -> str:
    """``<model>-<nodes>n``, in the characters job managers accept."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{pred.job.model.name}-{pred.job.nodes}n")


def pjm_request(pred: Prediction, settings: JobSettings, chain: Chain) -> PjmRequest:
    """The ``#PJM`` settings of one job of the chain.

    Raises:
        UserError: no resource group takes the job, or it has no elapsed time.
    """
    job, sched = pred.job, settings.scheduler
    group = job.cluster.allocation.resource_group_for(job.nodes, pred.allocation.kind)
    rscgrp = group.name if group else sched.resource_group
    if rscgrp is None:
        raise UserError("scheduler.resource_group: the cluster profile names no resource group "
                        "for the job; set one")
    if chain.elapse_s is None:
        raise UserError("--emit-job: a PJM job needs an elapsed time")
    threads = str(job.cluster.node.cores // job.processes_per_node)
    return PjmRequest(
        node=pred.allocation.request, rscgrp=rscgrp, elapse_s=chain.elapse_s,
        procs=job.layout.world, max_proc_per_node=job.processes_per_node, name=job_name(pred),
        group=sched.group, freq_MHz=round(job.cluster.node.clock_GHz * 1000),
        resources=tuple(sched.job_resources.items()), volumes=sched.llio_volumes,
        env=(("OMP_NUM_THREADS", threads), ("OPENBLAS_NUM_THREADS", threads)),
        llio=tuple(sched.llio))


def _body(pred: Prediction, settings: JobSettings, chain: Chain, cd: str,
          launch: list[str]) -> list[str]:
    """Header comment, folder, setup, the completed-run guard and the launch."""
    done = shlex.quote(f"{settings.out}/{DONE_FILE}")
    lines = [*_header_comment(pred, chain), "set -u", f'cd "{cd}"']
    lines += [settings.scheduler.setup] if settings.scheduler.setup else []
    lines += [
        f"if [ -e {done} ]; then",
        f'    echo "the run is complete ({settings.out}/{DONE_FILE}): nothing to do"',
        "    exit 0",
        "fi",
        *launch,
        "    " + shlex.join(train_command(settings, chain)),
        "",
    ]
    return lines


def pjm_script(pred: Prediction, settings: JobSettings, chain: Chain) -> str:
    world = pred.job.layout.world
    return "\n".join([
        "#!/bin/bash", *pjm_directives(pjm_request(pred, settings, chain)),
        *_body(pred, settings, chain, '${PJM_O_WORKDIR:-$(dirname "$0")}',
               [f"mpiexec -n {world} -vcoordfile ./rankmap.vcoord \\"])])


def slurm_script(pred: Prediction, settings: JobSettings, chain: Chain) -> str:
    job, sched = pred.job, settings.scheduler
    if chain.elapse_s is None:
        raise UserError("--emit-job: a Slurm job needs a time limit")
    threads = job.cluster.node.cores // job.processes_per_node
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name(pred)}",
             f"#SBATCH --nodes={job.nodes}", f"#SBATCH --ntasks-per-node={job.processes_per_node}",
             f"#SBATCH --time={elapse_hms(chain.elapse_s)}"]
    lines += [f"#SBATCH --partition={sched.partition}"] if sched.partition else []
    lines += [f"#SBATCH --account={sched.account}"] if sched.account else []
    launch = [
        f"export OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads}",
        'mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "export SLURM_HOSTFILE=$PWD/hostfile.$SLURM_JOB_ID",
        'while read -r n; do echo "${HOSTS[$n]}"; done < rankmap.nodes > "$SLURM_HOSTFILE"',
        f"srun --distribution=arbitrary -n {job.layout.world} \\",
    ]
    return "\n".join(lines + _body(pred, settings, chain,
                                   '${SLURM_SUBMIT_DIR:-$(dirname "$0")}', launch))


def local_script(pred: Prediction, settings: JobSettings, chain: Chain) -> str:
    return "\n".join(["#!/bin/bash", *_body(pred, settings, chain, '$(dirname "$0")',
                                             [f"mpiexec -n {pred.job.layout.world} \\"])])


def pjm_submit_script(chain: Chain, script: str) -> str:
    """Submit ``chain.jobs`` step jobs of ``script`` (see the module docstring)."""
    return "\n".join([
        "#!/bin/bash",
        f"# Submit the chain: {chain.jobs} step job(s) of {script}, one after another; each",
        "# resumes from the newest checkpoint. Exit status 2 (bad input) cancels the rest.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f'first=$(pjsub -z jid --step --sparam "sn=0" {script})',
        'id=${first%_*}',
        'echo "step job ${id}: sub-job ${first}"',
        f"for sn in $(seq 1 {chain.jobs - 1}); do",
        f'    pjsub -z jid --step --sparam "jid=${{id}},sn=${{sn}},'
        f'sd=ec=={BAD_INPUT_STATUS}:all:$((sn - 1))" {script}',
        "done",
        "",
    ])


def slurm_submit_script(chain: Chain, script: str) -> str:
    """Submit ``chain.jobs`` jobs of ``script``, each after the previous one ends."""
    return "\n".join([
        "#!/bin/bash",
        f"# Submit the chain: {chain.jobs} job(s) of {script}; each starts when the one before",
        "# has ended, however it ended (afterany), and resumes from the newest checkpoint.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f"jid=$(sbatch --parsable {script})",
        'jid=${jid%%;*}',
        'echo "job ${jid}"',
        f"for i in $(seq 2 {chain.jobs}); do",
        f'    jid=$(sbatch --parsable --dependency=afterany:"${{jid}}" {script})',
        '    jid=${jid%%;*}',
        '    echo "job ${jid}"',
        "done",
        "",
    ])


def _header_comment(pred: Prediction, chain: Chain) -> list[str]:
    d = pred.to_json()
    out = [
        f"# fugaku-sim plan: {d['model']} on {d['nodes']} nodes of {d['cluster']}, "
        f"tp={d['tp']} pp={d['pp']} dp={d['dp']}, micro-batch {d['micro_batch']}, "
        f"global batch {d['global_batch']}",
        f"# predicted step {d['step_time_s']:.3f} s, {d['tokens_per_s']:.0f} tokens/s, "
        f"MFU {d['mfu']:.3f}, {d['memory_per_node_GiB']:.1f} GiB per node",
        f"# {chain.steps:,} steps in {chain.jobs} job(s) ({chain.why})"
        + (f" of {chain.elapse_s / 3600:g} h" if chain.elapse_s is not None else ""),
    ]
    return out


def write_job(pred: Prediction, out_dir: Path, settings: JobSettings, chain: Chain) -> list[Path]:
    """Write the job script, its rank map, its layout record and (on a batch machine) the
    submit script; returns the paths (job script first).

    Raises:
        UserError: the scheduler cannot take the job (see :func:`pjm_request`).
    """
    kind = pred.job.cluster.scheduler.kind
    if kind == "pjm":
        name, rankmap, lines = "job.pjm.sh", out_dir / "rankmap.vcoord", vcoord_lines(pred)
        text, submit = pjm_script(pred, settings, chain), pjm_submit_script(chain, "job.pjm.sh")
        if settings.scheduler.group is None:
            print("fugaku-sim: warning: no PJM group (#PJM -g): pass --group or set "
                  "scheduler.group in the cluster profile before submitting", file=sys.stderr)
    elif kind == "slurm":
        name, rankmap, lines = "job.sbatch.sh", out_dir / "rankmap.nodes", node_index_lines(pred)
        text = slurm_script(pred, settings, chain)
        submit = slurm_submit_script(chain, "job.sbatch.sh")
    else:
        name, rankmap, lines = "job.local.sh", out_dir / "rankmap.nodes", node_index_lines(pred)
        text, submit = local_script(pred, settings, chain), None
    paths = [out_dir / name, rankmap, out_dir / RECORD_FILE]
    write_json(paths[2], pred.record.to_json())
    write_text(rankmap, "\n".join(lines) + "\n")
    write_text(paths[0], text)
    if submit is not None:
        paths.append(out_dir / "submit.sh")
        write_text(paths[3], submit)
    for path in (paths[0], *paths[3:]):
        path.chmod(0o755)
    return paths
