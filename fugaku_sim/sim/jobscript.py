"""Job scripts and rank maps that run a predicted layout the way the prediction placed it.

Fugaku (PJM, Fujitsu Technical Computing Suite; RIKEN Fugaku user guide, "Job submission"
and "Rank assignment"):
- ``#PJM -L "node=AxBxC:torus"`` requests the virtual shape (``node=N:noncont`` a node count
  placed wherever nodes are free), ``#PJM -L "rscgrp=..."`` the resource group (the
  profile's group that takes the job's node count and allocation method), ``#PJM -L "elapse=HH:MM:SS"`` the time limit, ``#PJM --mpi "proc=N"`` the
  number of processes, ``#PJM --mpi "max-proc-per-node=K"`` processes per node.
- ``mpiexec -vcoordfile FILE`` places rank i on the node whose virtual coordinates are on
  line i + 1 of FILE, written ``(x,y,z)`` (as many values as the shape has axes, no spaces);
  ranks sharing a node repeat its coordinates. That is the file written here
  (``rankmap.vcoord``), from the same placement the prediction priced.
- The ranks run ``fugaku-sim train --layout-from layout.json``: the layout record
  (:mod:`fugaku_sim.spec.record`) written beside the script holds the layout and training
  settings the prediction used, so the trainer runs what was priced.
Slurm: ``#SBATCH --nodes/--ntasks-per-node/--time/--partition/--account``; ranks are placed
with ``srun --distribution=arbitrary`` and a ``SLURM_HOSTFILE`` listing one hostname per rank,
built at run time from the allocation's hostnames and ``rankmap.nodes`` (the job node index of
each rank, one per line).

A run longer than the scheduler's ``max_elapse_h`` is split into chained jobs that resume
from checkpoints; the script says how many and asks for the longest elapse allowed.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from fugaku_sim.io import write_json, write_text
from fugaku_sim.sim.predict import Prediction, prepare
from fugaku_sim.timelimit import elapse_hms

#: the layout record beside the script, which its ``fugaku-sim train`` line reads
RECORD_FILE = "layout.json"


def vcoord_lines(pred: Prediction) -> list[str]:
    """One ``(x,y,z)`` line per rank, in rank order."""
    placement = prepare(pred.job).placement
    coords = placement.node_coords()
    return ["(" + ",".join(str(int(v)) for v in row) + ")" for row in coords]


def node_index_lines(pred: Prediction) -> list[str]:
    """Job node index of every rank, in rank order (for Slurm's arbitrary distribution)."""
    return [str(int(n)) for n in prepare(pred.job).placement.node]


def run_hours(pred: Prediction) -> float | None:
    """Predicted wall time of the whole run (failures included), hours."""
    return pred.failures.wall_s / 3600 if pred.failures is not None else None


def job_chunks(pred: Prediction) -> tuple[int, float]:
    """(number of chained jobs, elapse per job in seconds, with a 10% margin)."""
    limit_s = pred.job.cluster.scheduler.max_elapse_h * 3600
    hours = run_hours(pred)
    want = (hours * 3600 if hours is not None else 3600.0) * 1.1
    count = max(1, math.ceil(want / limit_s))
    return count, min(limit_s, want / count)


def train_command(model_ref: str, record: str = RECORD_FILE) -> list[str]:
    """The ``fugaku-sim train`` invocation: the model and the layout record, which carries
    the layout (degrees, schedule, rank order, placement, job shape, allocation, processes per
    node) and every training setting the prediction used."""
    return ["fugaku-sim", "train", "--model", model_ref, "--layout-from", record]


def pjm_script(pred: Prediction, command: list[str]) -> str:
    job = pred.job
    chunks, elapse = job_chunks(pred)
    sched = job.cluster.scheduler
    group = job.cluster.allocation.resource_group_for(job.nodes, pred.allocation.kind)
    world = job.layout.world
    lines = [
        "#!/bin/bash",
        f'#PJM -L "node={pred.allocation.request}"',
        f'#PJM -L "rscgrp={group.name if group else sched.resource_group or "default"}"',
        f'#PJM -L "elapse={elapse_hms(elapse)}"',
        f'#PJM --mpi "proc={world}"',
        f'#PJM --mpi "max-proc-per-node={job.processes_per_node}"',
        "#PJM -j",
        "#PJM -S",
    ]
    if sched.account:
        lines.append(f"#PJM -g {sched.account}")
    lines += _header_comment(pred, chunks)
    threads = job.cluster.node.cores // job.processes_per_node
    lines += [
        f"export OMP_NUM_THREADS={threads}",
        'cd "${PJM_O_WORKDIR:-$(dirname "$0")}"',
        f"mpiexec -n {world} -vcoordfile ./rankmap.vcoord \\",
        "    " + shlex.join(command),
        "",
    ]
    return "\n".join(lines)


def slurm_script(pred: Prediction, command: list[str]) -> str:
    job = pred.job
    chunks, elapse = job_chunks(pred)
    sched = job.cluster.scheduler
    lines = [
        "#!/bin/bash",
        f"#SBATCH --nodes={job.nodes}",
        f"#SBATCH --ntasks-per-node={job.processes_per_node}",
        f"#SBATCH --time={elapse_hms(elapse)}",
    ]
    lines += [f"#SBATCH --partition={sched.partition}"] if sched.partition else []
    lines += [f"#SBATCH --account={sched.account}"] if sched.account else []
    lines += _header_comment(pred, chunks)
    lines += [
        'cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")}"',
        'mapfile -t HOSTS < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "export SLURM_HOSTFILE=$PWD/hostfile.$SLURM_JOB_ID",
        'while read -r n; do echo "${HOSTS[$n]}"; done < rankmap.nodes > "$SLURM_HOSTFILE"',
        f"srun --distribution=arbitrary -n {job.layout.world} \\",
        "    " + shlex.join(command),
        "",
    ]
    return "\n".join(lines)


def local_script(pred: Prediction, command: list[str]) -> str:
    return "\n".join(
        [
            "#!/bin/bash",
            *_header_comment(pred, 1),
            f"mpiexec -n {pred.job.layout.world} \\",
            "    " + shlex.join(command),
            "",
        ]
    )


def _header_comment(pred: Prediction, chunks: int) -> list[str]:
    d = pred.to_json()
    out = [
        f"# fugaku-sim plan: {d['model']} on {d['nodes']} nodes of {d['cluster']}, "
        f"tp={d['tp']} pp={d['pp']} dp={d['dp']}, micro-batch {d['micro_batch']}, "
        f"global batch {d['global_batch']}",
        f"# predicted step {d['step_time_s']:.3f} s, {d['tokens_per_s']:.0f} tokens/s, "
        f"MFU {d['mfu']:.3f}, {d['memory_per_node_GiB']:.1f} GiB per node",
    ]
    if d.get("time_to_train_days") is not None:
        out.append(
            f"# predicted run {d['time_to_train_days']:.2f} days (failures included) in "
            f"{chunks} chained job(s) resuming from checkpoints; checkpoint every "
            f"{d['checkpoint_interval_s']:.0f} s"
        )
    return out


def write_job(pred: Prediction, out_dir: Path, model_ref: str) -> list[Path]:
    """Write the job script, its rank map and its layout record for the cluster's scheduler;
    returns the paths (script first)."""
    command = train_command(model_ref)
    kind = pred.job.cluster.scheduler.kind
    if kind == "pjm":
        script, rankmap = out_dir / "job.pjm.sh", out_dir / "rankmap.vcoord"
        text, lines = pjm_script(pred, command), vcoord_lines(pred)
    else:
        name = "job.sbatch.sh" if kind == "slurm" else "job.local.sh"
        script, rankmap = out_dir / name, out_dir / "rankmap.nodes"
        render = slurm_script if kind == "slurm" else local_script
        text, lines = render(pred, command), node_index_lines(pred)
    record = out_dir / RECORD_FILE
    write_json(record, pred.record.to_json())
    write_text(rankmap, "\n".join(lines) + "\n")
    write_text(script, text)
    script.chmod(0o755)
    return [script, rankmap, record]
