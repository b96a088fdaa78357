"""Fujitsu PJM (Fugaku's job manager) glue for Snakemake's cluster-generic executor.

Three small programs use this module: ``workflows/scripts/pjm-submit`` turns a Snakemake job
script into a PJM job script with ``#PJM`` directives (the request is built here,
:func:`snakemake_request`; the lines by the one renderer, :func:`fugaku_sim.pjm.pjm_directives`) and submits it with ``pjsub -z jid``;
``pjm-status`` maps ``pjstat`` / ``pjstat -H -S`` output to ``running``, ``success`` or
``failed``; ``pjm-cancel`` calls ``pjdel``. Only the standard library is used, so the scripts
run under whatever ``python3`` is on PATH when Snakemake calls them.

Where each ``#PJM`` value comes from (precedence left to right):

============  =====================================  ==========================================
directive     per-job resource                       environment / default
============  =====================================  ==========================================
node shape    ``pjm_shape`` ("48x6x48"), else        ``FUGAKU_PJM_ALLOC`` (torus) is appended
              ``nodes`` (1-D), else 1                to multi-node shapes
rscgrp        ``pjm_rscgrp``                         ``FUGAKU_PJM_RSCGRP`` (small)
elapse        ``runtime`` (minutes)                  60 minutes
--mpi proc    ``tasks``                              1
-g group      ``pjm_group``                          ``FUGAKU_PJM_GROUP`` (none: PJM's default)
volumes       -                                      ``FUGAKU_PJM_VOLUMES`` -> PJM_LLIO_GFSCACHE
--llio        -                                      ``FUGAKU_PJM_LLIO`` (";"-separated)
freq          ``pjm_freq``                           ``FUGAKU_PJM_FREQ`` (none: site default)
============  =====================================  ==========================================

PJM job states (``pjstat`` column ST; Fujitsu Technical Computing Suite, man pjstat) and what
Snakemake is told:

ACC accepted, QUE waiting, RNA acquiring resources, RNP running the prologue, RUN running,
RNE running the epilogue, RNO waiting for end-of-job processing, SPP/SPD/RSM suspending,
suspended, resuming, HLD held by a user (waits for ``pjrls``): ``running``.
EXT exited: ``success`` when the job script's exit code and the PJM code are 0, else ``failed``.
CCL cancelled (``pjdel``, elapse limit), ERR fixed in an error state, RJT rejected: ``failed``.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fugaku_sim.errors import UserError
from fugaku_sim.pjm import JOB_NAME_MAX_BYTES, PjmRequest

Status = Literal["running", "success", "failed"]

RUNNING_STATES = frozenset({"ACC", "QUE", "RNA", "RNP", "RUN", "RNE", "RNO", "SPP", "SPD", "RSM",
                            "HLD", "SIN", "RDY", "SOT", "SWO", "SWD", "SWI"})
FAILED_STATES = frozenset({"CCL", "ERR", "RJT"})
ALLOC_MODES = ("torus", "mesh", "noncont")
_SHAPE = re.compile(r"^[1-9][0-9]*(x[1-9][0-9]*){0,2}$")
_PROPERTIES = re.compile(r"^# properties = (\{.*\})\s*$", re.MULTILINE)


class PjmError(UserError):
    """A job's resources or the PJM settings cannot be turned into a valid PJM job."""


@dataclass(frozen=True)
class PjmSettings:
    """Site and user settings for every job, read from ``FUGAKU_PJM_*`` environment variables."""

    rscgrp: str = "small"
    group: str | None = None
    alloc: str = "torus"
    volumes: str | None = None
    llio: tuple[str, ...] = ()
    freq_MHz: int | None = None
    logdir: str = "logs/pjm"
    setup: str | None = None
    python: str | None = None
    inherit_env: bool = True
    extra: tuple[str, ...] = ()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(";") if p.strip())


def settings_from_env(env: Mapping[str, str]) -> PjmSettings:
    """Read ``FUGAKU_PJM_*`` variables; raise :class:`PjmError` naming a bad one."""
    alloc = env.get("FUGAKU_PJM_ALLOC", "torus")
    if alloc not in ALLOC_MODES:
        raise PjmError(f"FUGAKU_PJM_ALLOC must be one of {', '.join(ALLOC_MODES)}, got {alloc!r}")
    freq = env.get("FUGAKU_PJM_FREQ") or None
    inherit = env.get("FUGAKU_PJM_INHERIT_ENV", "1")
    if inherit not in ("0", "1"):
        raise PjmError(f"FUGAKU_PJM_INHERIT_ENV must be 0 or 1, got {inherit!r}")
    return PjmSettings(
        rscgrp=env.get("FUGAKU_PJM_RSCGRP") or "small",
        group=env.get("FUGAKU_PJM_GROUP") or None,
        alloc=alloc,
        volumes=env.get("FUGAKU_PJM_VOLUMES") or None,
        llio=_split(env.get("FUGAKU_PJM_LLIO")),
        freq_MHz=_positive_int("FUGAKU_PJM_FREQ", freq) if freq else None,
        logdir=env.get("FUGAKU_PJM_LOGDIR") or "logs/pjm",
        setup=env.get("FUGAKU_PJM_SETUP") or None,
        python=env.get("FUGAKU_PJM_PYTHON") or None,
        inherit_env=inherit == "1",
        extra=_split(env.get("FUGAKU_PJM_EXTRA")),
    )


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PjmError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise PjmError(f"{name} must be a positive integer, got {value!r}")
    return number


def read_job_properties(jobscript: str) -> dict[str, Any]:
    """The ``# properties = {...}`` JSON line Snakemake writes into every job script."""
    match = _PROPERTIES.search(jobscript)
    if match is None:
        raise PjmError("job script has no '# properties = {...}' line; is it a Snakemake job script?")
    props: dict[str, Any] = json.loads(match.group(1))
    return props


def node_shape(resources: Mapping[str, Any], alloc: str) -> tuple[str, int]:
    """The ``node=`` value and its node count, e.g. ``("48x6x48:torus", 13824)``.

    ``pjm_shape`` ("AxBxC", optionally with ":torus"/":mesh"/":noncont") wins; otherwise
    ``nodes`` gives a 1-D shape. One node gets no allocation mode. Raises :class:`PjmError` for
    a malformed shape or a ``nodes`` that disagrees with it.
    """
    shape = resources.get("pjm_shape")
    nodes = resources.get("nodes")
    if shape:
        dims, _, mode = str(shape).partition(":")
        if not _SHAPE.match(dims):
            raise PjmError(f"resources.pjm_shape must look like 'A', 'AxB' or 'AxBxC', got {shape!r}")
        mode = mode or alloc
        if mode not in ALLOC_MODES:
            raise PjmError(f"resources.pjm_shape mode must be one of {', '.join(ALLOC_MODES)}, got {mode!r}")
        count = math.prod(int(d) for d in dims.split("x"))
        if nodes is not None and _positive_int("resources.nodes", nodes) != count:
            raise PjmError(f"resources.nodes={nodes} disagrees with resources.pjm_shape={shape} ({count} nodes)")
        return f"{dims}:{mode}", count
    count = _positive_int("resources.nodes", nodes) if nodes is not None else 1
    return (f"{count}:{alloc}" if count > 1 else "1"), count


def job_name(props: Mapping[str, Any]) -> str:
    """``smk-<rule or group>-<jobid>``, cut to PJM's 63-byte limit."""
    base = props.get("rule") or props.get("groupid") or "job"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"smk-{base}-{props.get('jobid', 0)}")
    return name[:JOB_NAME_MAX_BYTES]


def snakemake_request(props: Mapping[str, Any], settings: PjmSettings, logdir: str) -> PjmRequest:
    """The PJM request of one Snakemake job (rendered by :func:`fugaku_sim.pjm.pjm_directives`);
    ``logdir`` is where -o/-e/--spath point."""
    resources: Mapping[str, Any] = props.get("resources", {})
    shape, nodes = node_shape(resources, settings.alloc)
    procs = _positive_int("resources.tasks", resources.get("tasks", 1))
    runtime = resources.get("runtime", 60)  # Snakemake's runtime is in minutes
    freq = resources.get("pjm_freq") or settings.freq_MHz
    threads = _positive_int("threads", props.get("threads", 1))
    name = job_name(props)
    return PjmRequest(
        node=shape, rscgrp=resources.get("pjm_rscgrp") or settings.rscgrp,
        elapse_s=60 * _positive_int("resources.runtime", runtime), procs=procs,
        max_proc_per_node=math.ceil(procs / nodes) if procs > nodes else None, name=name,
        group=resources.get("pjm_group") or settings.group,
        freq_MHz=_positive_int("resources.pjm_freq", freq) if freq else None,
        volumes=settings.volumes,
        env=(("OMP_NUM_THREADS", str(threads)), ("OPENBLAS_NUM_THREADS", str(threads))),
        inherit_env=settings.inherit_env, llio=settings.llio, extra=settings.extra,
        stdout=f"{logdir}/{name}.%j.out", stderr=f"{logdir}/{name}.%j.err",
        stats=f"{logdir}/{name}.%j.stats",
    )


def render_job_script(jobscript: str, directives: list[str], settings: PjmSettings) -> str:
    """The PJM job script: bash, the directives, optional setup, then Snakemake's body.

    ``FUGAKU_PJM_PYTHON`` replaces the interpreter of Snakemake's ``<python> -m snakemake`` line
    (Fugaku's login nodes are x86, its compute nodes A64FX: the job needs an aarch64 Python).
    """
    body = [line for line in jobscript.splitlines() if not line.startswith("#!")]
    text = "\n".join(body)
    if settings.python:
        text = re.sub(r"\S*python[0-9.]*(?= -m snakemake)", shlex.quote(settings.python), text)
    setup = [settings.setup] if settings.setup else []
    return "\n".join(["#!/bin/bash", *directives, "set -e", *setup, text]) + "\n"


# --- pjstat parsing --------------------------------------------------------------------------

def parse_pjstat_table(text: str) -> dict[str, str]:
    """Job id -> state (column ST) from ``pjstat``'s default table output."""
    states: dict[str, str] = {}
    column: int | None = None
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "JOB_ID" and "ST" in fields:
            column = fields.index("ST")
        elif column is not None and len(fields) > column:
            states[fields[0]] = fields[column]
    return states


def parse_pjstat_detail(text: str) -> dict[str, str]:
    """``KEY : value`` pairs from ``pjstat -S`` (e.g. ``STATE``, ``EXIT CODE``, ``PJM CODE``)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in pairs:
            pairs[key.strip()] = value.strip()
    return pairs


def status_from_state(state: str, exit_code: str | None = None, pjm_code: str | None = None) -> Status:
    """Snakemake's status for a PJM state (see the module docstring for the table)."""
    if state in RUNNING_STATES:
        return "running"
    if state == "EXT":
        return "success" if exit_code == "0" and pjm_code in (None, "", "0") else "failed"
    if state in FAILED_STATES:
        return "failed"
    return "running"  # an unknown state: keep waiting rather than fail a job that may succeed


def needs_history(jobid: str, active: str) -> bool:
    """Whether ``pjstat <id>`` alone does not settle the status (job gone or in a final state)."""
    return parse_pjstat_table(active).get(jobid) not in RUNNING_STATES


def job_status(jobid: str, active: str, history: str = "") -> tuple[Status, str]:
    """Status of ``jobid`` from ``pjstat <id>`` and ``pjstat -H -S <id>`` output, with a reason.

    A job still in the active list with a running state is ``running``; otherwise the history's
    ``STATE``, ``EXIT CODE`` and ``PJM CODE`` decide; a job neither list knows is ``failed``.
    """
    active_state = parse_pjstat_table(active).get(jobid)
    if active_state in RUNNING_STATES:
        return "running", active_state
    detail = parse_pjstat_detail(history)
    state = detail.get("STATE")
    if state:
        exit_code, pjm_code = detail.get("EXIT CODE"), detail.get("PJM CODE")
        reason = f"{state}, exit code {exit_code or '?'}, pjm code {pjm_code or '?'}"
        return status_from_state(state, exit_code, pjm_code), reason
    if active_state is not None:
        return status_from_state(active_state), active_state
    return "failed", "job unknown to both pjstat and pjstat -H"
