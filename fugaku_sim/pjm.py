"""``#PJM`` directives of a Fujitsu PJM (Fugaku) job: the one renderer.

Both writers of PJM job scripts call :func:`pjm_directives`: the workflow's submit hook
(``workflows/scripts/pjm-submit``, resources from Snakemake's job properties and the
``FUGAKU_PJM_*`` variables, :func:`fugaku_sim.workflow.pjm.snakemake_request`) and
``fugaku-sim plan --emit-job`` (the layout record, its resource group, the chain's elapsed
time, the cluster profile's scheduler section and options, :mod:`fugaku_sim.sim.jobscript`).
Only the standard library is used: the submit hook imports this under whatever ``python3``
Snakemake finds.

The directives, in the order the Fugaku-LLM production script wrote them (repository
Fugaku-LLM/DeepSpeedFugaku, branch fugaku-llm, ``scripts/13b/13b_pp8_tp6_dp288_outer.sh``)
and as the Fugaku user guide ("Job submission", "LLIO", "Step job") documents them:

================================  =======================================================
``--name "NAME"``                 job name (PJM takes at most 63 bytes)
``-L "rscgrp=GROUP"``             resource group
``-L "node=SHAPE[:MODE]"``        ``48x6x48:torus``, ``64:noncont``, ``1``
``-L "elapse=HH:MM:SS"``          elapsed-time limit
``-L "freq=MHZ"``                 CPU clock (2200: the 2.2 GHz the profile's peaks assume)
``-L "KEY=VALUE"``                further resources: the power knobs ``throttling_state``,
                                  ``issue_state``, ``ex_pipe_state``, ``eco_state``,
                                  ``retention_state``
``--mpi "proc=N"``                MPI processes
``--mpi "max-proc-per-node=K"``   processes per node
``-g GROUP``                      the project's group (charged for the node-hours)
``-x PJM_LLIO_GFSCACHE=VOLS``     volumes (``/vol0004:/vol0005``) LLIO caches for the job
``-x VAR=VALUE,...``              environment of the job script
``-X``                            pass the submitting shell's environment
``--llio OPTION``                 LLIO areas (``localtmp-size=50Gi``, ``sio-read-cache=off``)
``-o FILE`` / ``-e FILE``, ``-j``  standard output and error (``-j``: error into output)
``-S [--spath FILE]``             job statistics (with the PJM code) at the end
================================  =======================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from fugaku_sim.timelimit import elapse_hms

#: pjsub --name takes at most this many bytes
JOB_NAME_MAX_BYTES = 63


@dataclass(frozen=True)
class PjmRequest:
    """Everything the ``#PJM`` lines of one job say; None or empty leaves a directive out."""

    node: str
    rscgrp: str
    elapse_s: float
    procs: int
    max_proc_per_node: int | None = None
    name: str | None = None
    group: str | None = None
    freq_MHz: int | None = None
    resources: tuple[tuple[str, str], ...] = ()
    volumes: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    inherit_env: bool = False
    llio: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    stdout: str | None = None  # None: PJM's default file, with standard error joined (-j)
    stderr: str | None = None
    stats: str | None = None  # --spath of -S (None: PJM's default name)


def pjm_directives(req: PjmRequest) -> list[str]:
    """The ``#PJM`` lines of ``req``, in the order of the module docstring.

    >>> pjm_directives(PjmRequest("2x3x2:torus", "small", 3600, 12, max_proc_per_node=1))
    ... # doctest: +NORMALIZE_WHITESPACE
    ['#PJM -L "rscgrp=small"', '#PJM -L "node=2x3x2:torus"', '#PJM -L "elapse=01:00:00"',
     '#PJM --mpi "proc=12"', '#PJM --mpi "max-proc-per-node=1"', '#PJM -j', '#PJM -S']
    """
    lines = [f'#PJM --name "{req.name[:JOB_NAME_MAX_BYTES]}"'] if req.name else []
    lines += [f'#PJM -L "rscgrp={req.rscgrp}"', f'#PJM -L "node={req.node}"',
              f'#PJM -L "elapse={elapse_hms(req.elapse_s)}"']
    lines += [f'#PJM -L "freq={req.freq_MHz}"'] if req.freq_MHz else []
    lines += [f'#PJM -L "{key}={value}"' for key, value in req.resources]
    lines.append(f'#PJM --mpi "proc={req.procs}"')
    if req.max_proc_per_node:
        lines.append(f'#PJM --mpi "max-proc-per-node={req.max_proc_per_node}"')
    lines += [f"#PJM -g {req.group}"] if req.group else []
    lines += [f"#PJM -x PJM_LLIO_GFSCACHE={req.volumes}"] if req.volumes else []
    if req.env:
        lines.append("#PJM -x " + ",".join(f"{k}={v}" for k, v in req.env))
    lines += ["#PJM -X"] if req.inherit_env else []
    lines += [f'#PJM --llio "{option}"' for option in req.llio]
    lines += [f"#PJM {option}" for option in req.extra]
    if req.stdout is None:
        lines.append("#PJM -j")
    else:
        lines.append(f"#PJM -o {req.stdout}")
        lines += [f"#PJM -e {req.stderr}"] if req.stderr else ["#PJM -j"]
    lines.append(f"#PJM -S --spath {req.stats}" if req.stats else "#PJM -S")
    return lines
