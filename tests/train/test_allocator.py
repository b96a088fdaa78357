"""The allocator tuning takes on glibc and is harmless to call twice."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from fugaku_sim.train.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_mallopt_settings_take_on_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    a = np.ones((512, 512), dtype=np.float32)  # allocation still works afterwards
    assert float(a.sum()) == 512 * 512
