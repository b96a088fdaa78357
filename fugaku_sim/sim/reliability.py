"""Reliability: checkpoint interval and the wall time lost to failures at scale.

Sources:
- Young, "A first order approximation to the optimum checkpoint interval", CACM 17(9), 1974:
  tau = sqrt(2 delta M) for checkpoint write time delta and system MTBF M.
- Daly, "A higher order estimate of the optimum checkpoint interval for restart dumps",
  FGCS 22(3), 2006: tau = sqrt(2 delta M) - delta (for delta < M / 2), and the expected wall
  time of a job of solve time T_s under exponential failures, first order::

      T_wall = T_s (1 + delta / tau) / (1 - (tau / 2 + delta + R) / M)

  (each failure costs the restart R, on average half an interval of lost work, and the
  checkpoint being written.)
The system MTBF is the node MTBF over the node count (independent exponential failures).
The restart time R is taken as one checkpoint read at the write rate; relaunch and
re-initialisation costs have no profile figure and are left out (an optimistic bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def system_mtbf_s(mtbf_node_h: float, nodes: int) -> float:
    """MTBF of a job on ``nodes`` nodes, seconds."""
    return mtbf_node_h * 3600.0 / nodes


def young_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Young's optimum compute time between checkpoints, seconds."""
    return math.sqrt(2.0 * checkpoint_s * mtbf_s)


def daly_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Daly's higher-order optimum interval (falls back to M when delta >= M / 2)."""
    if checkpoint_s >= mtbf_s / 2:
        return mtbf_s
    return young_interval_s(checkpoint_s, mtbf_s) - checkpoint_s


def expected_wall_time_s(
    solve_s: float, checkpoint_s: float, restart_s: float, mtbf_s: float, interval_s: float
) -> float:
    """Daly's first-order expected wall time; inf when failures outpace progress."""
    lost = (interval_s / 2 + checkpoint_s + restart_s) / mtbf_s
    if lost >= 1:
        return math.inf
    return solve_s * (1 + checkpoint_s / interval_s) / (1 - lost)


@dataclass(frozen=True)
class FailurePlan:
    """Checkpointing of a training run and what failures cost."""

    checkpoint_bytes: float
    checkpoint_s: float
    interval_s: float
    mtbf_s: float
    solve_s: float
    wall_s: float

    @property
    def overhead(self) -> float:
        """Wall time over failure-free time, minus one."""
        return self.wall_s / self.solve_s - 1 if self.solve_s else 0.0


def plan_failures(
    solve_s: float, checkpoint_bytes: float, write_Bps: float, mtbf_node_h: float, nodes: int
) -> FailurePlan:
    """Checkpoint interval (Young) and expected wall time (Daly) of ``solve_s`` of training."""
    delta = checkpoint_bytes / write_Bps
    mtbf = system_mtbf_s(mtbf_node_h, nodes)
    tau = young_interval_s(delta, mtbf) if delta < mtbf / 2 else mtbf
    wall = expected_wall_time_s(solve_s, delta, delta, mtbf, tau)
    return FailurePlan(checkpoint_bytes, delta, tau, mtbf, solve_s, wall)
