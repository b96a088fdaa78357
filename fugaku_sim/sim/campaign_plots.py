"""Campaign charts (matplotlib, Agg): one sampled campaign as a Gantt chart of its jobs, and
the distribution of finish times over every seed.

matplotlib is imported inside the functions so the command line starts fast.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.io import atomic_path
from fugaku_sim.sim.campaign import CampaignResult
from fugaku_sim.sim.montecarlo import CampaignSummary
from fugaku_sim.sim.plots import _pyplot

#: colour and legend label of each stretch of a job's time
STRETCHES = {
    "queue": ("#dddddd", "queue wait"),
    "startup": ("#ee7733", "start-up"),
    "restore": ("#ccbb44", "restore"),
    "train": ("#4477aa", "training kept"),
    "lost": ("#ee3377", "work lost"),
}
DAY = 86400.0


def _when(days: Any, start: datetime | None) -> Any:
    """Days since the start as plot coordinates: matplotlib dates when a start date is given."""
    if start is None:
        return days
    import matplotlib.dates as mdates

    return mdates.date2num([start + timedelta(days=float(d)) for d in np.atleast_1d(days)])


def _gantt(ax: Any, result: CampaignResult, start: datetime | None) -> None:
    seen: set[str] = set()
    for seg in result.trace:
        y = -seg.job
        x0, x1 = _when([seg.start / DAY, seg.end / DAY], start)
        if seg.kind in STRETCHES:
            colour, label = STRETCHES[seg.kind]
            ax.broken_barh([(x0, x1 - x0)], (y - 0.3, 0.6), color=colour,
                           label=None if seg.kind in seen else label,
                           hatch="//" if seg.kind == "queue" else None, edgecolor="#999999"
                           if seg.kind == "queue" else colour, linewidth=0.3)
            seen.add(seg.kind)
    for kind, style in (("checkpoint", dict(color="#222222", lw=0.4)),
                        ("failure", dict(color="#cc0000", lw=2.0)),
                        ("limit", dict(color="#000000", lw=2.0, linestyles="dotted"))):
        marks = [s for s in result.trace if s.kind == kind]
        if not marks:
            continue
        xs = _when([s.start / DAY for s in marks], start)
        ys = np.array([-s.job for s in marks], dtype=float)
        lo, hi = (ys + 0.32, ys + 0.48) if kind == "checkpoint" else (ys - 0.45, ys + 0.45)
        label = {"checkpoint": "checkpoint written", "failure": "node failure",
                 "limit": "elapsed limit"}[kind]
        ax.vlines(xs, lo, hi, label=label, **style)
    jobs = result.jobs
    ax.set_yticks([-j for j in range(1, jobs + 1)], [f"job {j}" for j in range(1, jobs + 1)])
    ax.set_ylim(-jobs - 0.7, -0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)


def _histogram(ax: Any, summary: CampaignSummary, start: datetime | None,
               reference_days: float | None) -> None:
    """Finish times up to the 99th percentile (the tail beyond is counted in a note)."""
    days = summary.values("wall_days")
    days = days[np.isfinite(days)]
    top = float(np.quantile(days, 0.99)) if len(days) else 1.0
    shown = days[days <= top]
    edges = np.linspace(min(float(shown.min()), reference_days or np.inf), top, 41)
    ax.hist(_when(shown, start), bins=_when(edges, start), color="#4477aa", alpha=0.8)
    q = summary.quantiles("wall_days")
    for name, style in (("p10", ":"), ("p50", "-"), ("p90", "--")):
        ax.axvline(_when([q[name]], start)[0], color="#222222", lw=1.3, ls=style,
                   label=f"{name} {q[name]:.1f} days")
    if reference_days is not None:
        ax.axvline(_when([reference_days], start)[0], color="#ee7733", lw=1.8,
                   label=f"predict's single number {reference_days:.1f} days")
    beyond = len(summary.results) - len(shown)
    if beyond:
        ax.annotate(f"{beyond} seeds beyond (up to {days.max():.1f} days"
                    f"{', some never finish' if len(days) < len(summary.results) else ''})",
                    (0.99, 0.97), xycoords="axes fraction", ha="right", va="top", fontsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_ylabel("seeds")
    ax.grid(axis="x", alpha=0.3)


def plot_campaign(
    result: CampaignResult,
    summary: CampaignSummary,
    path: Path,
    title: str,
    start: datetime | None = None,
    reference_days: float | None = None,
) -> None:
    """Top: the traced campaign ``result`` job by job; bottom: finish times of ``summary``."""
    plt = _pyplot()
    gantt_h = max(2.2, 0.32 * result.jobs + 1.2)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, gantt_h + 4.4),
                                   gridspec_kw={"height_ratios": [gantt_h, 3.0]})
    _gantt(ax1, result, start)
    ax1.set_title(f"one sampled campaign (seed {summary.median_seed()}, the median): "
                  f"{result.wall_days:.1f} days, {result.jobs} jobs, {result.failures} "
                  "failures", fontsize=10)
    _histogram(ax2, summary, start, reference_days)
    ax2.set_title(f"time to the token target over {len(summary.results):,} seeds", fontsize=10)
    for ax in (ax1, ax2):
        if start is None:
            ax.set_xlabel("days since the first job was submitted")
        else:
            import matplotlib.dates as mdates

            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
            ax.set_xlabel(f"date (first job submitted {start:%Y-%m-%d %H:%M})")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
