"""The one time-limit format of the job scripts (PJM elapse, Slurm --time)."""

from __future__ import annotations

import doctest
import re

from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim import timelimit
from fugaku_sim.timelimit import MIN_ELAPSE_S, elapse_hms


def test_docstring_examples() -> None:
    assert doctest.testmod(timelimit, raise_on_error=True).attempted >= 1


@given(st.floats(0.0, 1e7))
def test_reads_back_to_the_limit_rounded_up(seconds: float) -> None:
    text = elapse_hms(seconds)
    assert re.fullmatch(r"\d{2,}:[0-5]\d:[0-5]\d", text)
    h, m, s = map(int, text.split(":"))
    total = 3600 * h + 60 * m + s
    assert total >= seconds and total >= MIN_ELAPSE_S
    assert total - seconds < 1 or total == MIN_ELAPSE_S
