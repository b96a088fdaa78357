"""Per-step metrics (JSON lines), the run summary and the progress bar (rank 0 only).

One line of ``metrics.jsonl`` per optimizer step::

    {"step": 12, "loss": 6.93, "lr": 0.0012, "grad_norm": 0.81, "tokens": 24576,
     "tokens_per_s": 10520.3, "step_time_s": 0.195,
     "breakdown_s": {"compute": ..., "recompute": ..., "tp_comm": ..., "pp_comm": ...,
                     "dp_comm": ..., "bubble": ..., "optimizer": ...},
     "val_loss": 6.88,          # only on steps with a validation
     "memory_peak_bytes": {"weights": ..., "gradients": ..., "optimizer": ...,
                           "activations": ..., "workspace": ..., "framework": ...,
                           "total": ...}}   # only on the step measured for memory

``step`` counts completed optimizer steps from 1; ``loss`` is the mean cross-entropy (nats per
token) of the step's global batch; ``step_time_s`` the slowest rank's wall time of the step
(``MPI.Wtime``; validation excluded); ``breakdown_s`` the mean over ranks of each rank's
measured split (see :mod:`fugaku_sim.train.timers`); ``memory_peak_bytes`` the peak of the
fullest rank by memory kind (see :mod:`fugaku_sim.train.memory`; ``summary.json`` also has
every rank's, ``memory_by_rank``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fugaku_sim.io import read_json_lines
from fugaku_sim.train.timers import BREAKDOWN_KEYS


def read_metrics(path: Path, skip_bad: bool = False) -> list[dict[str, Any]]:
    """The step records of a ``metrics.jsonl``; with ``skip_bad`` lines that are not step
    records are left out (a run killed mid-line leaves half a record).

    Raises:
        UserError: the file is missing or unreadable, or (without ``skip_bad``) holds a line
            that is not a step record.
    """
    from fugaku_sim.errors import UserError

    records = read_json_lines(path, str(path), "rerun the training", skip_bad)
    steps = [r for r in records if isinstance(r.get("step"), int)]
    if len(steps) < len(records) and not skip_bad:
        raise UserError(f"{path}: a line without an integer 'step'; not a trainer's metrics")
    return steps


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines after the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        kept = ([r for r in read_metrics(path, skip_bad=True) if r["step"] <= resume_step]
                if path.exists() else [])
        self.records: list[dict[str, Any]] = kept
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def summarize(records: list[dict[str, Any]], skip: int) -> dict[str, Any]:
    """Means of tokens/s, step time and breakdown over the steps after the first ``skip``
    (timing warm-up), and the last train and validation losses."""
    timed = [r for r in records if r["step"] > skip] or records
    n = max(len(timed), 1)
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    return {
        "steps_timed": len(timed),
        "tokens_per_s_mean": sum(r["tokens_per_s"] for r in timed) / n,
        "step_time_s_mean": sum(r["step_time_s"] for r in timed) / n,
        "breakdown_s_mean": {k: sum(r["breakdown_s"][k] for r in timed) / n
                             for k in BREAKDOWN_KEYS},
        "final_train_loss": records[-1]["loss"] if records else None,
        "final_valid_loss": vals[-1] if vals else None,
    }


class Progress:
    """A rich progress bar on stderr when it is a terminal; else a line every ~10 %."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bar: Any = None
        self._last_line = start
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                            console=console)
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if not self.enabled:
            return
        info = f"loss {loss:.4f}  {tokens_per_s:,.0f} tok/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
        elif step == self.total or step - self._last_line >= max(1, self.total // 10):
            self._last_line = step
            print(f"train: step {step}/{self.total}  {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
