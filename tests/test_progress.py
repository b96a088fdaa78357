"""Progress lines: when they come, what they say (count, info, elapsed, ETA), the modes."""

from __future__ import annotations

import pytest

from fugaku_sim import progress as progress_module
from fugaku_sim.errors import UserError
from fugaku_sim.progress import Progress, clock, eta_s, progress_mode


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock_s(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "lines")
    return fake


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    out, err = capsys.readouterr()
    assert out == ""  # progress never goes to stdout (a verb's JSON does)
    return err.splitlines()


def test_lines_at_start_every_n_and_end_with_rate_based_eta(
        clock_s: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("plan", every_n=4, every_s=1e9) as progress:
        for done in range(11):
            progress.update(done, 10, "layouts", f"at {done}")
            clock_s.now += 2.0  # 2 s an item
    assert lines(capsys) == [
        "plan: layouts 0/10 (0%) | at 0 | elapsed 0:00:00",
        "plan: layouts 4/10 (40%) | at 4 | elapsed 0:00:08 | ETA 0:00:12",
        "plan: layouts 8/10 (80%) | at 8 | elapsed 0:00:16 | ETA 0:00:04",
        "plan: layouts 10/10 (100%) | at 10 | elapsed 0:00:20",
    ]


def test_lines_every_s_seconds_and_a_last_line_for_an_unknown_total(
        clock_s: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("data clean", every_s=5.0) as progress:
        for done in range(1, 7):
            progress.update(done, None, "manpages")
            clock_s.now += 2.0
    # first at 1; 5 s later (6 s: item 4); item 6 came 4 s after that line, so the close
    # prints where the task stopped, as of its last update
    assert lines(capsys) == [
        "data clean: manpages 1 | elapsed 0:00:00",
        "data clean: manpages 4 | elapsed 0:00:06",
        "data clean: manpages 6 | elapsed 0:00:10",
    ]


def test_tasks_are_counted_apart(clock_s: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("evaluate", every_s=1e9) as progress:
        progress.update(0, 2, "perplexity", "ja")
        progress.update(0, 3, "samples")
        clock_s.now += 1.0
        progress.update(2, 2, "perplexity")
        progress.update(3, 3, "samples")
    assert [line.split(" | ")[0] for line in lines(capsys)] == [
        "evaluate: perplexity 0/2 (0%)", "evaluate: samples 0/3 (0%)",
        "evaluate: perplexity 2/2 (100%)", "evaluate: samples 3/3 (100%)"]


def test_off_and_after_close_nothing_is_printed(
        clock_s: Clock, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = Progress("train", enabled=False)
    quiet.update(1, 2, "iteration")
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")
    Progress("plan").update(1, 2)
    closed = Progress("plan", every_s=1e9)
    closed.close()
    closed.update(1, 2)
    assert lines(capsys) == []


def test_auto_is_lines_off_a_terminal_and_bad_settings_are_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUGAKU_SIM_PROGRESS", raising=False)
    assert progress_mode() == "lines"  # pytest's stderr is not a terminal
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "bar")
    assert progress_mode() == "bar" and progress_mode(enabled=False) == "off"
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "loud")
    with pytest.raises(UserError, match="FUGAKU_SIM_PROGRESS='loud': expected one of auto"):
        progress_mode()
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "lines")
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS_SECONDS", "0")
    with pytest.raises(UserError, match="FUGAKU_SIM_PROGRESS_SECONDS='0'"):
        Progress("plan")
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS_SECONDS", "30")
    assert Progress("plan").every_s == 30.0


def test_a_forced_bar_runs_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "bar")
    with Progress("campaign") as progress:
        for done in range(5):
            progress.update(done, 4, "seeds", "x")
    assert progress.mode == "off"


def test_clock_and_eta() -> None:
    assert clock(0) == "0:00:00" and clock(86399.6) == "24:00:00"
    assert eta_s(5, 10, 5, 3.0) is None  # no item since the first update: no rate yet
    assert eta_s(5, None, 0, 3.0) is None
    assert eta_s(10, 10, 2, 5.0) is None  # done: no ETA on the last line
