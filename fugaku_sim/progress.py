"""Progress of long work, one story for every verb: a rich bar on a terminal, lines otherwise.

A batch job's log, a pipe or a Snakemake rule's ``2> {log}`` is not a terminal: there each task
prints a line on stderr when it starts, every ``every_n`` items or ``every_s`` seconds, and when
it ends, so a log can be followed line by line (``tail -f``), as engineers follow a Megatron-LM
job's per-iteration lines::

    plan: layouts 120/480 (25%) | elapsed 0:00:03 | ETA 0:00:09
    data collect: manpages-ja 812/1,530 (53%) | elapsed 0:00:10 | ETA 0:00:09
    evaluate: perplexity 2/4 (50%) | ja | elapsed 0:00:04 | ETA 0:00:04

On a terminal the same updates drive a rich progress bar (one row per task). The ETA is the
remaining items at the rate measured since the task's first update (so a slow first item, a
warm-up, does not count), or absent while no rate is known.

Two environment variables change the defaults for every verb at once:
``FUGAKU_SIM_PROGRESS`` = ``auto`` (bar on a terminal, lines elsewhere; the default), ``bar``,
``lines`` or ``off``; ``FUGAKU_SIM_PROGRESS_SECONDS`` = seconds between lines (default 5).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from fugaku_sim.errors import UserError

MODE_ENV = "FUGAKU_SIM_PROGRESS"
SECONDS_ENV = "FUGAKU_SIM_PROGRESS_SECONDS"
MODES = ("auto", "bar", "lines", "off")
DEFAULT_EVERY_S = 5.0


def clock(seconds: float) -> str:
    """``3725.4`` -> ``1:02:05`` (hours:minutes:seconds, whole seconds).

    >>> clock(3725.4), clock(59.6)
    ('1:02:05', '0:01:00')
    """
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def eta_s(done: int, total: int | None, first_done: int, elapsed_s: float) -> float | None:
    """Seconds left at the rate since the first update (``done - first_done`` items in
    ``elapsed_s``); None without a total or a rate, or once the total is reached.

    >>> eta_s(30, 100, 10, 40.0)  # 20 items in 40 s, 70 left
    140.0
    """
    if total is None or done <= first_done or elapsed_s <= 0 or done >= total:
        return None
    return (total - done) * elapsed_s / (done - first_done)


def progress_mode(enabled: bool = True) -> str:
    """``bar``, ``lines`` or ``off``: ``off`` when not ``enabled``, else ``FUGAKU_SIM_PROGRESS``
    (``auto``: a bar when stderr is a terminal, else lines).

    Raises:
        UserError: ``FUGAKU_SIM_PROGRESS`` holds another word.
    """
    if not enabled:
        return "off"
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise UserError(f"{MODE_ENV}={mode!r}: expected one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    from rich.console import Console

    return "bar" if Console(stderr=True).is_terminal else "lines"


def seconds_between_lines() -> float:
    """``FUGAKU_SIM_PROGRESS_SECONDS`` or the default.

    Raises:
        UserError: not a positive number.
    """
    text = os.environ.get(SECONDS_ENV)
    if text is None:
        return DEFAULT_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UserError(f"{SECONDS_ENV}={text!r}: expected a positive number of seconds")
    return value


@dataclass
class _Task:
    """Where one task stands: its first update (for the rate) and its last line."""

    total: int | None
    first_done: int
    started: float
    line_done: int
    line_time: float
    done: int = 0  # the latest update: its count, info and time
    info: str = ""
    at: float = 0.0
    bar_id: Any = None


class Progress:
    """Progress of one verb's tasks on stderr (see the module docstring); a context manager.

    ``update(done, total, task, info)`` reports ``done`` of ``total`` items of ``task`` (a
    short noun, e.g. ``layouts``; total None when unknown) and ``info``, what is running or the
    latest figures. Lines come every ``every_n`` items (None: no count rule) or ``every_s``
    seconds (None: ``FUGAKU_SIM_PROGRESS_SECONDS``), and at a task's first and last update.
    """

    def __init__(self, label: str, *, enabled: bool = True, every_n: int | None = None,
                 every_s: float | None = None) -> None:
        self.label = label
        self.mode = progress_mode(enabled)
        self.every_n = every_n
        self.every_s = seconds_between_lines() if every_s is None else every_s
        self._tasks: dict[str, _Task] = {}
        self._bar: Any = None
        if self.mode == "bar":
            self._bar = _rich_bar()
            self._bar.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def update(self, done: int, total: int | None = None, task: str = "", info: str = "") -> None:
        """Report ``done`` of ``total`` items of ``task``; prints a line when one is due."""
        if self.mode == "off":
            return
        now = time.monotonic()
        state = self._tasks.get(task)
        first = state is None
        if state is None:
            state = self._tasks[task] = _Task(total, done, now, done, now)
        state.total = total if total is not None else state.total
        state.done, state.info, state.at = done, info, now
        if self._bar is not None:
            self._update_bar(state, task, done, info)
            return
        last = state.total is not None and done >= state.total
        due = (first or last or now - state.line_time >= self.every_s
               or (self.every_n is not None and done - state.line_done >= self.every_n))
        if due:
            self._print_line(task, state)

    def _print_line(self, task: str, state: _Task) -> None:
        """The line of the task's latest update."""
        state.line_done, state.line_time = state.done, state.at
        elapsed = state.at - state.started
        eta = eta_s(state.done, state.total, state.first_done, elapsed)
        print(self.format_line(task, state.done, state.total, state.info, elapsed, eta),
              file=sys.stderr, flush=True)

    def format_line(self, task: str, done: int, total: int | None, info: str,
                    elapsed_s: float, eta: float | None) -> str:
        """One progress line (a subclass may write its own, as training does)."""
        count = f"{done:,}" if total is None else (
            f"{done:,}/{total:,} ({done / total:.0%})" if total else f"{done:,}/0")
        parts = [f"{self.label}: {task + ' ' if task else ''}{count}"]
        parts += [info] if info else []
        parts.append(f"elapsed {clock(elapsed_s)}")
        parts += [f"ETA {clock(eta)}"] if eta is not None else []
        return " | ".join(parts)

    def _update_bar(self, state: _Task, task: str, done: int, info: str) -> None:
        name = f"{self.label} {task}".strip()
        if state.bar_id is None:
            state.bar_id = self._bar.add_task(name, total=state.total, completed=done, info=info)
        self._bar.update(state.bar_id, completed=done, total=state.total, info=info)

    def flush(self) -> None:
        """Print the last line of each task whose latest update has none (a task of unknown
        total, or one that stopped early)."""
        if self.mode == "lines":
            for task, state in self._tasks.items():
                if state.done != state.line_done:
                    self._print_line(task, state)

    def close(self) -> None:
        """Stop the bar, or :meth:`flush` the lines; further updates print nothing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.flush()
        self.mode = "off"


def _rich_bar() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    return Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
               console=Console(stderr=True))
