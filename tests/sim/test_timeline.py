"""A run's schedule: when each step ends and each checkpoint is safe, worked out by hand."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.sim.timeline import Run, multiples_between


def example(**changes: object) -> Run:
    """The module docstring's worked example."""
    fields: dict = dict(start=0.0, startup_s=7.0, restore_s=0.0, first=0, total=5, step_s=10.0,
                        eval_s=4.0, write_s=3.0, eval_every=4, checkpoint_every=2)
    fields.update(changes)
    return Run(**fields)


def test_worked_example() -> None:
    run = example()
    assert run.train_start == 7.0
    assert run.checkpoint_steps() == [2, 4, 5]
    assert [run.safe_at(s) for s in (2, 4, 5)] == [30.0, 57.0, 74.0]
    assert run.finish == 74.0
    assert run.kept_s(4) == (40.0, 4.0, 6.0)
    assert run.kept_s(5) == (50.0, 8.0, 9.0)  # the final evaluation and checkpoint count


def test_saved_by() -> None:
    run = example()
    assert [run.saved_by(t) for t in (0.0, 29.9, 30.0, 56.9, 57.0, 73.9, 74.0, 1e9)] == [
        0, 0, 2, 2, 4, 4, 5, 5]


def test_restarted_run_counts_from_its_first_step() -> None:
    run = example(start=100.0, restore_s=2.0, first=2)
    assert run.train_start == 109.0
    assert run.checkpoint_steps() == [4, 5]
    assert run.safe_at(4) == 109.0 + 20.0 + 4.0 + 3.0
    assert run.saved_by(run.safe_at(4) - 1e-9) == 2


def test_no_periodic_checkpoints_keeps_only_the_end() -> None:
    run = example(checkpoint_every=None, eval_every=None)
    assert run.checkpoint_steps() == [5]
    assert run.finish == 57.0
    assert run.saved_by(56.0) == 0 and run.saved_by(57.0) == 5


def test_multiples_between() -> None:
    assert multiples_between(250, 0, 1000) == 4
    assert multiples_between(250, 250, 499) == 0
    assert multiples_between(None, 0, 1000) == 0
    assert multiples_between(100, 950, 900) == 0


@given(
    first=st.integers(0, 60),
    extra=st.integers(1, 60),
    every=st.integers(1, 25),
    evals=st.one_of(st.none(), st.integers(1, 25)),
    t=st.floats(0, 2000),
)
def test_saved_by_matches_a_scan(first: int, extra: int, every: int, evals: int | None,
                                 t: float) -> None:
    """The binary search agrees with walking the checkpoints one by one."""
    first -= first % every  # a run starts at a saved step
    run = example(first=first, total=first + extra, checkpoint_every=every, eval_every=evals,
                  write_s=1.5, eval_s=2.5)
    scan = first
    for step in run.checkpoint_steps():
        if run.safe_at(step) <= t:
            scan = step
    assert run.saved_by(t) == scan
