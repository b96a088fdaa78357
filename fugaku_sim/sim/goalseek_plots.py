"""The goal-seek chart (matplotlib, Agg): time to train against node-hours for every node
count of the ladder, the Pareto front, the deadline and budget lines, the choice.

matplotlib is imported inside the function so the command line starts fast.
"""

from __future__ import annotations

from pathlib import Path

from fugaku_sim.io import atomic_path
from fugaku_sim.sim.goalseek import GOAL_QUANTILE, GoalResult, Point
from fugaku_sim.sim.plots import _pyplot

FRONT, OTHER, GOAL, CHOICE = "#4477aa", "#bbbbbb", "#ee6677", "#228833"


def plot_goal(result: GoalResult, choice: Point, path: Path, title: str) -> None:
    """Each node count at (p50 node-hours, p50 days) with its p10-p90 days as a bar and its
    p90 days as a tick; the front joined through p50 and p90; deadline and budget lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6.2))
    front = {p.nodes for p in result.front()}
    for p in sorted(result.points, key=lambda p: p.q("node_hours", "p50")):
        colour = FRONT if p.nodes in front else OTHER
        x = p.q("node_hours", "p50") / 1e6
        lo, mid, hi = (p.q("wall_days", k) for k in ("p10", "p50", "p90"))
        ax.plot([x, x], [lo, hi], color=colour, lw=2.5, alpha=0.7, solid_capstyle="butt")
        ax.plot([x], [mid], "o", color=colour, ms=6)
        ax.plot([x], [hi], "_", color=colour, ms=12, mew=2)
        ax.annotate(f"{p.allocated_nodes:,}", (x, hi), textcoords="offset points", xytext=(4, 3),
                    fontsize=7, color="#444444" if p.nodes in front else "#999999")
    line = sorted((p for p in result.points if p.nodes in front),
                  key=lambda p: p.q("node_hours", "p50"))
    xs = [p.q("node_hours", "p50") / 1e6 for p in line]
    ax.plot(xs, [p.q("wall_days", "p50") for p in line], "-", color=FRONT, lw=1.2,
            label="Pareto front, p50 days (bar: p10-p90)")
    ax.plot(xs, [p.q("wall_days", GOAL_QUANTILE) for p in line], "--", color=FRONT, lw=1.0,
            label=f"Pareto front, {GOAL_QUANTILE} days")
    goal = result.goal
    if goal.deadline_days is not None:
        ax.axhline(goal.deadline_days, color=GOAL, lw=1.5,
                   label=f"deadline {goal.deadline_days:g} days")
    if goal.budget_node_hours is not None:
        ax.axvline(goal.budget_node_hours / 1e6, color=GOAL, lw=1.5, ls=":",
                   label=f"budget {goal.budget_node_hours / 1e6:g}M node-hours")
    ax.plot([choice.q("node_hours", "p50") / 1e6], [choice.q("wall_days", GOAL_QUANTILE)], "*",
            color=CHOICE, ms=16, zorder=5,
            label=f"choice: {choice.allocated_nodes:,} nodes, {GOAL_QUANTILE} "
                  f"{choice.q('wall_days', GOAL_QUANTILE):.1f} days")
    ax.set_yscale("log")
    ax.set_xlabel("node-hours, p50 (millions)")
    ax.set_ylabel("days to the token target (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
