"""Import a finished run of this project's trainer (``fugaku-sim train --out DIR``) as a
measured run.

The run directory holds ``summary.json`` (the model, training settings and layout of the run)
and ``metrics.jsonl`` (one line per optimizer step with ``step_time_s``, the slowest rank's
wall time of the step); :func:`fugaku_sim.calibrate.compare.read_measured` reads both. The
row's step time is the median of the steps after the warm-up (``run.json``'s
``warmup_steps`` when ``validate`` wrote the run, else 2), or the summary's mean when
``metrics.jsonl`` is missing. Every rank of such a run ran on one machine: the row has one
node with all ranks on it.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from pydantic import ValidationError

from fugaku_sim.calibrate.compare import read_measured
from fugaku_sim.calibrate.execute import warmup_of
from fugaku_sim.calibrate.measured import MeasuredRun
from fugaku_sim.errors import UserError
from fugaku_sim.spec.load import validation_message


def run_from_trainer(
    run_dir: Path, *, cluster: str, warmup_steps: int | None = None,
    run_id: str | None = None, clock_GHz: float | None = None,
    conditions: dict[str, str] | None = None,
) -> MeasuredRun:
    """A measured run (one row of a runs file) from a trainer output directory.

    Raises:
        UserError: no ``summary.json``, or one without the run's specs or timings.
    """
    run_dir = run_dir.parent if run_dir.name == "summary.json" else run_dir
    warm = warmup_steps if warmup_steps is not None else warmup_of(run_dir, 2)
    try:
        measured = read_measured(run_dir, warm, "median")
    except UserError as exc:  # its messages name validate's option; here the directory is an argument
        raise UserError(str(exc).removeprefix("--from-metrics: ")) from None
    model, train, layout = measured.model, measured.train, measured.layout
    if measured.step_time_stats:
        how = (f"metrics.jsonl: median step_time_s of {measured.steps_timed} steps after "
               f"{warm} warm-up steps")
    else:
        how = f"summary.json: step_time_s_mean of {measured.steps_timed} steps (no metrics.jsonl)"
    summary = run_dir / "summary.json"
    fields = dict(
        id=run_id or run_dir.name, cluster=cluster, model=model.name,
        layers=model.layers, hidden=model.hidden, heads=model.heads, ffn_hidden=model.ffn,
        seq_len=model.seq_len, vocab=model.vocab, tied_embeddings=model.tied_embeddings,
        dropout=model.dropout_rate,
        tp=layout.tp, pp=layout.pp, dp=layout.dp, schedule=layout.schedule,
        virtual_stages=layout.virtual_stages, sequence_parallel=layout.sequence_parallel,
        micro_batch=train.micro_batch, global_batch=train.global_batch,
        recompute=train.recompute, recompute_stages=train.recompute_stages,
        precision=train.precision, zero_stage=train.zero_stage,
        overlap_grad_reduce=train.overlap_grad_reduce,
        nodes=1, processes_per_node=layout.world, clock_GHz=clock_GHz, framework="fugaku-sim",
        step_time_s=measured.step_time_s, time_quality="measured",
        steps_timed=measured.steps_timed or None,
        date=datetime.date.fromtimestamp(summary.stat().st_mtime),
        source=f"{run_dir.name}/{how}", conditions=dict(conditions or {}),
    )
    try:
        return MeasuredRun.model_validate(fields)
    except ValidationError as exc:
        raise UserError(validation_message(exc, str(run_dir), "run")) from None
