"""Checks a run makes before anything is written (pure: no MPI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.spec import Layout, ModelSpec, TrainSpec
from fugaku_sim.train.run_plan import RunOptions, check_layout, check_options, plan_run, total_steps

from .helpers import write_data

MODEL = ModelSpec(name="t", layers=4, hidden=16, heads=2, seq_len=8, vocab=64)
TRAIN = TrainSpec(global_batch=8, micro_batch=2, steps=3)


@pytest.mark.parametrize(("model", "train", "layout", "world", "match"), [
    (MODEL, TRAIN, Layout(tp=2), 1, "2 ranks, but the job has 1"),
    (MODEL, TRAIN, Layout(tp=4), 4, "layout.tp: 4 does not divide model.heads"),
    (MODEL, TRAIN, Layout(pp=3), 3, "layout.pp: 3 does not divide model.layers"),
    (MODEL.model_copy(update={"vocab": 63}), TRAIN, Layout(tp=2), 2, "model.vocab"),
    (MODEL, TRAIN, Layout(dp=8), 8, "train.global_batch"),
    (MODEL, TRAIN.model_copy(update={"precision": "bf16"}), Layout(), 1, "train.precision"),
    (MODEL, TRAIN, Layout(pp=2, schedule="interleaved", virtual_stages=4), 2, "layers"),
    (MODEL, TRAIN, Layout(sequence_parallel=True), 1,
     "layout.sequence_parallel: needs layout.tp > 1"),
    (MODEL.model_copy(update={"seq_len": 7}), TRAIN, Layout(tp=2, sequence_parallel=True), 2,
     r"layout.sequence_parallel: layout.tp \(2\) does not divide model.seq_len \(7\)"),
    (MODEL.model_copy(update={"dropout": 0.1}), TRAIN, Layout(), 1,
     "model.dropout: 0.1: the numpy trainer computes without dropout"),
])
def test_bad_layouts(model: ModelSpec, train: TrainSpec, layout: Layout, world: int,
                     match: str) -> None:
    with pytest.raises(UserError, match=match):
        check_layout(model, train, layout, world)


def test_good_layouts_pass() -> None:
    for tp, pp, dp in [(1, 1, 1), (2, 2, 1), (1, 4, 2), (2, 1, 4)]:
        check_layout(MODEL, TRAIN, Layout(tp=tp, pp=pp, dp=dp), tp * pp * dp)
    check_layout(MODEL, TRAIN, Layout(tp=2, pp=2, dp=2, sequence_parallel=True), 8)


def test_an_unset_dropout_is_trained_and_recorded_as_none(tmp_path: Path) -> None:
    """GPT-2's family rate (0.1, what the simulator prices when ``dropout`` is unset) is not
    what the trainer runs: it says so, and its records say ``dropout: 0``."""
    data = write_data(tmp_path / "data")
    plan = plan_run(MODEL, TRAIN, Layout(), RunOptions(data, tmp_path / "out"), 1)
    assert MODEL.dropout is None and MODEL.dropout_rate == 0.1
    assert plan.model.dropout == 0.0 and plan.model.dropout_rate == 0.0
    assert len(plan.notes) == 1 and "records dropout: 0" in plan.notes[0]
    explicit = plan_run(MODEL.model_copy(update={"dropout": 0.0}), TRAIN, Layout(),
                        RunOptions(data, tmp_path / "out"), 1)
    assert explicit.notes == () and explicit.model == plan.model


def test_steps_from_tokens() -> None:
    assert total_steps(MODEL, TRAIN) == 3
    by_tokens = TRAIN.model_copy(update={"steps": None, "tokens": 8 * 8 * 2.5})
    assert total_steps(MODEL, by_tokens) == 3
    with pytest.raises(UserError, match="train.steps"):
        total_steps(MODEL, TRAIN.model_copy(update={"steps": None}))


def test_options(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--checkpoint-every"):
        check_options(RunOptions(tmp_path, tmp_path, checkpoint_every=0), 1)
    with pytest.raises(UserError, match="--fail-rank"):
        check_options(RunOptions(tmp_path, tmp_path, fail_rank=2), 2)


def test_plan_reads_but_never_writes(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    out = tmp_path / "out"
    plan = plan_run(MODEL, TRAIN, Layout(), RunOptions(data, out), 1)
    assert plan.steps == 3 and plan.resume.directory is None
    assert not out.exists()
    small = MODEL.model_copy(update={"vocab": 32})
    with pytest.raises(UserError, match="exceeds model.vocab"):
        plan_run(small, TRAIN, Layout(), RunOptions(data, out), 1)
    assert not out.exists()
