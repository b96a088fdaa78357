"""Checkpoint interval and failure cost (Young 1974, Daly 2006)."""

from __future__ import annotations

import math

import pytest

from fugaku_sim.sim.reliability import (
    daly_interval_s,
    expected_wall_time_s,
    plan_failures,
    system_mtbf_s,
    young_interval_s,
)


def test_young_formula() -> None:
    assert young_interval_s(60.0, 86400.0) == pytest.approx(math.sqrt(2 * 60 * 86400))
    assert daly_interval_s(60.0, 86400.0) == pytest.approx(math.sqrt(2 * 60 * 86400) - 60)


def test_fugaku_llm_system_mtbf() -> None:
    assert system_mtbf_s(1e6, 13824) / 3600 == pytest.approx(72.34, rel=1e-3)


def test_failures_cost_time_and_more_with_worse_nodes() -> None:
    good = plan_failures(1e6, 1.6e11, 1.5e11, 1e6, 13824)
    bad = plan_failures(1e6, 1.6e11, 1.5e11, 1e4, 13824)
    assert good.wall_s > good.solve_s
    assert bad.wall_s > good.wall_s
    assert bad.interval_s < good.interval_s


def test_hopeless_machine_never_finishes() -> None:
    assert expected_wall_time_s(1.0, 10.0, 10.0, 5.0, 5.0) == math.inf
