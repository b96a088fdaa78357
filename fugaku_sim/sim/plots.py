"""Plots (matplotlib, Agg backend): plan throughput per layout, sweep curves.

matplotlib is imported inside the functions so the command line starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fugaku_sim.io import write_figure
from fugaku_sim.sim.plan_rows import layout_label, split_dimensions
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS

#: one colour per breakdown key, in its order (Paul Tol's bright scheme)
COLOURS = ("#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677", "#bbbbbb", "#aa3377")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_plan(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Horizontal bars: tokens/s of each layout (best on top), step-time breakdown beside;
    each layout labelled by the choices that differ between layouts."""
    plt = _pyplot()
    differ, _shared = split_dimensions(rows)
    rows = rows[::-1]
    labels = [layout_label(r, differ) for r in rows]
    height = max(3.0, 0.28 * len(rows) + 1.5)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(13, height), sharey=True, gridspec_kw={"width_ratios": [1, 1.2]}
    )
    y = list(range(len(rows)))
    ax1.barh(y, [r["tokens_per_s"] / 1e3 for r in rows], color="#4477aa")
    for yi, r in zip(y, rows):
        ax1.text(r["tokens_per_s"] / 1e3, yi, f" MFU {r['mfu']:.2f}", va="center", fontsize=7)
    ax1.set_yticks(y, labels, fontsize=7)
    ax1.set_xlabel("throughput (thousand tokens/s)")
    ax1.set_title("throughput")
    left = [0.0] * len(rows)
    for key, colour in zip(BREAKDOWN_KEYS, COLOURS, strict=True):
        vals = [r["breakdown_s"][key] for r in rows]
        ax2.barh(y, vals, left=left, color=colour, label=key)
        left = [a + b for a, b in zip(left, vals)]
    ax2.set_xlabel("step time (s)")
    ax2.set_title("step time breakdown (critical stage)")
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    fig.suptitle(title)
    fig.tight_layout()
    write_figure(fig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_sweep(rows: list[dict[str, Any]], vary: str, label: str, path: Path,
               title: str) -> None:
    """Write :func:`sweep_figure` as a PNG."""
    plt = _pyplot()
    fig = sweep_figure(rows, vary, label, title)
    write_figure(fig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_tornado(rows: list[dict[str, Any]], path: Path, title: str, central: float,
                 unit: str) -> None:
    """Tornado chart: for each input (largest swing on top) a bar from the answer with the
    input at the low end of its range to the answer at the high end, around the central
    answer. ``rows`` are ``{"label", "at_low", "at_high"}``."""
    from matplotlib.patches import Patch

    from fugaku_sim.io import atomic_path

    plt = _pyplot()
    rows = rows[::-1]
    height = max(3.0, 0.42 * len(rows) + 1.6)
    fig, ax = plt.subplots(figsize=(11, height))
    y = list(range(len(rows)))
    for yi, r in zip(y, rows):
        lo, hi = r["at_low"], r["at_high"]
        ax.barh(yi, lo - central, left=central, color="#4477aa", height=0.6)
        ax.barh(yi, hi - central, left=central, color="#ee6677", height=0.6)
        for v in (lo, hi):
            ax.text(v, yi, f" {v:,.4g} ", va="center", fontsize=8,
                    ha="left" if v >= central else "right")
    ax.axvline(central, color="black", linewidth=1)
    ax.set_yticks(y, [r["label"] for r in rows], fontsize=9)
    ax.set_xlabel(f"{unit} (central {central:,.4g})")
    span = max((abs(v - central) for r in rows for v in (r["at_low"], r["at_high"])),
               default=0.0) or abs(central) * 0.05 or 1.0
    ax.set_xlim(central - 1.35 * span, central + 1.35 * span)
    ax.legend(handles=[Patch(color="#4477aa", label="input at the low end of its range"),
                       Patch(color="#ee6677", label="input at the high end")],
              fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def sweep_figure(rows: list[dict[str, Any]], vary: str, label: str, title: str) -> Any:
    """Left: tokens/s and MFU against the varied quantity ``vary`` (``label``: its name and
    unit, :func:`fugaku_sim.sim.sweep.axis_label`); right: the step-time breakdown of each
    value.

    Both left axes start at zero and end 15% above their largest value, so that the same
    relative change looks the same on either curve (a twin axis with its own baseline turns a
    15% change into a cliff beside a flat line).
    """
    plt = _pyplot()
    ok = [r for r in rows if r.get("step_time_s") is not None]
    x = [r["value"] for r in ok]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    kilo = [r["tokens_per_s"] / 1e3 for r in ok]
    # wide, so it still shows where MFU (which is proportional at a fixed node count) lies on it
    ax1.plot(x, kilo, "o-", color="#4477aa", label="tokens/s", linewidth=4, markersize=9)
    tops = [*kilo]
    if vary == "nodes" and ok:
        base = ok[0]
        ideal = [base["tokens_per_s"] / 1e3 * v / base["value"] for v in x]
        ax1.plot(x, ideal, "--", color="#999999", label="linear scaling")
        tops += ideal
    ax1.set_xlabel(label)
    ax1.set_ylabel("thousand tokens/s")
    ax1.set_ylim(0, max(tops + [1e-9]) * 1.15)
    twin = ax1.twinx()
    mfu = [r["mfu"] for r in ok]
    twin.plot(x, mfu, "s:", color="#ee6677", label="MFU")
    twin.set_ylabel("MFU (fraction of peak)")
    twin.set_ylim(0, max(mfu + [1e-9]) * 1.15)
    _value_ticks(ax1, x)
    lines = ax1.get_legend_handles_labels()
    lines2 = twin.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="lower right")
    ax1.set_title("throughput (both axes from zero)")
    # one bar per value, evenly spaced: values are often doublings, too far apart for bars
    # drawn to scale
    bottom = [0.0] * len(ok)
    slots = list(range(len(ok)))
    for key, colour in zip(BREAKDOWN_KEYS, COLOURS, strict=True):
        vals = [r["breakdown_s"][key] for r in ok]
        ax2.bar(slots, vals, bottom=bottom, color=colour, label=key, width=0.6)
        bottom = [a + b for a, b in zip(bottom, vals)]
    ax2.set_xticks(slots, [f"{v:,g}" for v in x])
    ax2.set_xlabel(label)
    ax2.set_ylabel("step time (s)")
    ax2.set_title("step time breakdown (critical stage)")
    ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _value_ticks(ax: Any, x: list[float]) -> None:
    """Ticks at the swept values themselves when they are far enough apart to be read."""
    ordered = sorted(set(x))
    span = (ordered[-1] - ordered[0]) if len(ordered) > 1 else 0.0
    if span > 0 and min(b - a for a, b in zip(ordered, ordered[1:])) >= 0.06 * span:
        ax.set_xticks(ordered, [f"{v:,g}" for v in ordered])
