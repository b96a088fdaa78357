"""The memory tracker: holdings by kind, and an op's transient allocations at the peak."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from fugaku_sim.spec.breakdown import MEMORY_KEYS
from fugaku_sim.train.memory import MemoryTracker, resident_bytes

MB = 2**20


def test_peak_is_the_largest_point_with_its_breakdown() -> None:
    mem = MemoryTracker()
    try:
        assert mem.held["framework"] > 0  # the interpreter and numpy, at least
        mem.hold("weights", "w", 10 * MB)
        mem.start_step()
        mem.hold("activations", "a", 5 * MB)
        mem.hold("activations", "a", 6 * MB)  # replaces, not adds
        with mem.region():
            tmp = np.ones(3 * MB // 8)  # 3 MB alive during the op, then freed
            del tmp
        mem.drop("a")
        mem.hold("gradients", "g", 4 * MB)
        report = mem.report()
    finally:
        mem.end_step()
    assert set(MEMORY_KEYS) <= set(report)
    assert report["weights"] == 10 * MB and report["activations"] == 6 * MB
    assert report["gradients"] == 0  # held after the peak
    assert 3 * MB <= report["workspace"] < 3.2 * MB
    assert report["total"] == sum(report[k] for k in MEMORY_KEYS)
    assert report["resident_peak"] > 0 and resident_bytes() > 0


def test_nothing_is_measured_outside_a_step_or_when_disabled() -> None:
    mem = MemoryTracker()
    mem.hold("weights", "w", MB)
    mem.end_step()
    assert mem.report()["total"] == 0
    off = MemoryTracker(enabled=False)
    off.hold("weights", "w", MB)
    off.start_step()
    with off.region():
        pass
    assert off.report()["total"] == 0 and off.held["weights"] == 0
    mem = MemoryTracker()
    with pytest.raises(KeyError):
        mem.hold("nope", "x", 1)
    mem.end_step()
    assert not tracemalloc.is_tracing()
