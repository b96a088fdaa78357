"""Plan rows: the choices that tell layouts apart, and why the best one wins.

A plan row is a prediction's JSON (``predict --json``; a plan prints a list of them, best
first). :data:`DIMENSIONS` is every choice the plan makes, each with its column heading,
its cell and a short label for plots. A table of rows shows a column for every dimension
whose value differs between them and says once what they all share (:func:`split_dimensions`),
so no two rows look alike; :func:`explain_winner` compares the best row with the best row
that differs from it in each dimension, naming the breakdown terms that make the gap. The
command-line table (``plan``), the Markdown table (``workflow plan-table``) and the plot
(:func:`fugaku_sim.sim.plots.plot_plan`) all use these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]


def stage_ranges(stages: list[int]) -> str:
    """Stage numbers as ranges.

    >>> stage_ranges([0, 1, 2, 3, 6]), stage_ranges([])
    ('0-3,6', '')
    """
    out: list[str] = []
    for s in sorted(stages):
        if out and out[-1].split("-")[-1] == str(s - 1):
            out[-1] = out[-1].split("-")[0] + f"-{s}"
        else:
            out.append(str(s))
    return ",".join(out)


def recompute_label(row: Row) -> str:
    """Recomputation of a row by stage: ``none``, ``full``, ``selective``, ``full 0-3`` or
    ``full 0-3, selective rest``."""
    full, sel, pp = row["recompute_stages"], row.get("selective_recompute_stages", []), row["pp"]
    if len(full) == pp:
        return "full"
    if len(sel) == pp:
        return "selective"
    if not full:
        return "none"
    return f"full {stage_ranges(full)}" + (", selective rest" if sel else "")


def schedule_label(row: Row) -> str:
    v = row.get("virtual_stages", 1)
    return row["schedule"] + (f" x{v}" if v > 1 else "")


@dataclass(frozen=True)
class Dimension:
    """One choice a plan makes: the row key, the column heading, the cell text and a
    short label (plots)."""

    key: str
    heading: str
    cell: Callable[[Row], str]
    short: Callable[[Row], str]


def _plain(key: str, prefix: str) -> tuple[Callable[[Row], str], Callable[[Row], str]]:
    return (lambda r: str(r[key])), (lambda r: f"{prefix}{r[key]}")


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("tp", "TP", *_plain("tp", "tp")),
    Dimension("pp", "PP", *_plain("pp", "pp")),
    Dimension("dp", "DP", *_plain("dp", "dp")),
    Dimension("micro_batch", "micro-batch", *_plain("micro_batch", "mb")),
    Dimension("schedule", "schedule", schedule_label, schedule_label),
    Dimension("placement", "placement", lambda r: r["placement"], lambda r: r["placement"][:4]),
    Dimension("rank_order", "rank order", lambda r: r["rank_order"], lambda r: r["rank_order"]),
    Dimension("job_shape", "node shape", lambda r: r["job_shape"], lambda r: r["job_shape"]),
    Dimension("sequence_parallel", "seq. parallel",
              lambda r: "on" if r["sequence_parallel"] else "off",
              lambda r: "sp" if r["sequence_parallel"] else "no-sp"),
    Dimension("recompute", "recompute", recompute_label,
              lambda r: "rc:" + recompute_label(r).replace(", selective rest", "+sel")),
    Dimension("zero_stage", "ZeRO", *_plain("zero_stage", "zero")),
)

#: (row key, column heading, format) of the figures a plan table shows for every row
METRICS = (
    ("step_time_s", "step s", "{:.3f}"), ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("mfu", "MFU", "{:.1%}"), ("memory_per_node_GiB", "GiB/node", "{:.1f}"),
    ("time_to_train_days", "days", "{:.2f}"), ("node_hours", "node-hours", "{:,.0f}"),
)


def metric_cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def split_dimensions(rows: list[Row]) -> tuple[list[Dimension], list[Dimension]]:
    """(dimensions whose cells differ between ``rows``, those all rows share); dimensions
    a row lacks (an older plan file) are left out."""
    present = [d for d in DIMENSIONS if all(_has(r, d) for r in rows)]
    differ = [d for d in present if len({d.cell(r) for r in rows}) > 1]
    return differ, [d for d in present if d not in differ]


def _has(row: Row, d: Dimension) -> bool:
    try:
        d.cell(row)
    except KeyError:
        return False
    return True


def shared_text(rows: list[Row], shared: list[Dimension]) -> str:
    """What every row has in common, as ``TP 6, PP 8, ...``."""
    return ", ".join(f"{d.heading} {d.cell(rows[0])}" for d in shared)


def explain_winner(rows: list[Row]) -> list[str]:
    """Why row 1 beats the others: for each dimension that differs, the best row with
    another value, how much longer its step is and which breakdown terms make the gap."""
    if len(rows) < 2:
        return []
    best = rows[0]
    differ, _ = split_dimensions(rows)
    lines = []
    for d in differ:
        rival_at = next(i for i, r in enumerate(rows) if d.cell(r) != d.cell(best))
        rival = rows[rival_at]
        gap = rival["step_time_s"] - best["step_time_s"]
        terms = {k: rival["breakdown_s"][k] - best["breakdown_s"].get(k, 0.0)
                 for k in rival["breakdown_s"]}
        worse = sorted((k for k in terms if terms[k] > 0), key=lambda k: -terms[k])[:2]
        why = " and ".join(f"{k} +{terms[k]:.3f} s" for k in worse) or "no single term"
        also = [o.heading for o in differ if o is not d and o.cell(rival) != o.cell(best)]
        if gap <= 1e-9 * best["step_time_s"]:
            lines.append(f"{d.heading} {d.cell(best)} rather than {d.cell(rival)}: a tie with "
                         f"#{rival_at + 1} (ranked by order of search)")
            continue
        lines.append(
            f"{d.heading} {d.cell(best)} rather than {d.cell(rival)}: the best such layout "
            f"(#{rival_at + 1}) takes {rival['step_time_s']:.3f} s per step, "
            f"{gap:+.3f} s ({gap / best['step_time_s']:+.1%}): {why}"
            f" (memory {rival['memory_per_node_GiB']:.1f} vs {best['memory_per_node_GiB']:.1f}"
            f" GiB/node" + (f"; it also differs in {', '.join(also)})" if also else ")"))
    return lines


def layout_label(row: Row, dims: list[Dimension] | None = None) -> str:
    """A short label of ``row`` from ``dims`` (every dimension if not given)."""
    return " ".join(d.short(row) for d in (dims if dims is not None else DIMENSIONS))
