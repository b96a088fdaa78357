"""Per-step metrics (JSON lines and TensorBoard events), the run summary and the progress
lines or bar (rank 0 only).

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
from pathlib import Path
from typing import Any

from fugaku_sim.io import read_json_lines
from fugaku_sim.progress import Progress, clock
from fugaku_sim.train.events import EventLog
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
    """Append-only ``metrics.jsonl``, and the same records as TensorBoard events beside it
    (:class:`fugaku_sim.train.events.EventLog`, when the ``tensorboard`` extra is installed); on
    resume, records after the resumed step are dropped from both."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        kept = ([r for r in read_metrics(path, skip_bad=True) if r["step"] <= resume_step]
                if path.exists() else [])
        self.records: list[dict[str, Any]] = kept
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())
        self.events = EventLog.open(path.parent, resume_step)

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.events.write(record)

    def close(self) -> None:
        self._file.close()
        self.events.close()


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


class TrainProgress:
    """Training progress on rank 0 (:mod:`fugaku_sim.progress`): a rich bar on a terminal, else
    one line every ``every_n`` steps in the form of Megatron-LM's per-iteration log line, so a
    job's log reads like the reference job's::

        train: iteration 12/30 | elapsed time per iteration (ms): 195.0 | learning rate:
        1.200E-03 | lm loss: 6.930000E+00 | grad norm: 0.810 | tokens per second: 10,520 |
        elapsed 0:00:03 | ETA 0:00:05

    (one line; ``validation loss`` is added on steps with a validation).
    """

    def __init__(self, total: int, start: int, enabled: bool, every_n: int = 1) -> None:
        self.total = total
        self.progress = _IterationLines("train", enabled=enabled, every_n=every_n,
                                        every_s=float("inf"))
        if start:  # a resumed run: its rate and ETA start from here
            self.progress.update(start, total, "iteration", "resumed")

    def update(self, record: dict[str, Any]) -> None:
        """Report the step ``record`` of ``metrics.jsonl`` (a bar shows loss and tokens/s)."""
        info = (f"loss {record['loss']:.4f}  {record['tokens_per_s']:,.0f} tok/s"
                if self.progress.mode == "bar" else iteration_text(record))
        self.progress.update(record["step"], self.total, "iteration", info)

    def close(self) -> None:
        self.progress.close()


def iteration_text(record: dict[str, Any]) -> str:
    """A step record's figures as Megatron-LM's ``training_log`` names them."""
    parts = [f"elapsed time per iteration (ms): {record['step_time_s'] * 1e3:.1f}",
             f"learning rate: {record['lr']:.3E}", f"lm loss: {record['loss']:.6E}",
             f"grad norm: {record['grad_norm']:.3f}",
             f"tokens per second: {record['tokens_per_s']:,.0f}"]
    if "val_loss" in record:
        parts.append(f"validation loss: {record['val_loss']:.6E}")
    return " | ".join(parts)


class _IterationLines(Progress):
    """Lines that start ``train: iteration N/M`` (a bar on a terminal, as every verb's)."""

    def format_line(self, task: str, done: int, total: int | None, info: str,
                    elapsed_s: float, eta: float | None) -> str:
        parts = [f"{self.label}: {task} {done}/{total}", info, f"elapsed {clock(elapsed_s)}"]
        parts += [f"ETA {clock(eta)}"] if eta is not None else []
        return " | ".join(p for p in parts if p)
