"""Run figures derived from the spec alone, and the breakdown keys both engines report."""

from __future__ import annotations

import doctest
import math
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.errors import SpecError
from fugaku_sim.spec import (
    Layout,
    ModelSpec,
    TrainSpec,
    breakdown,
    figures,
    load_model_preset,
    validate_section,
)
from fugaku_sim.spec.figures import (
    element_bytes,
    micro_batches_per_replica,
    run_steps,
    tokens_per_step,
)
from fugaku_sim.spec.train import TrainPrecision

MODEL = ModelSpec(name="t", layers=4, hidden=16, heads=2, seq_len=8, vocab=64)


def test_docstring_examples() -> None:
    assert doctest.testmod(figures, raise_on_error=True).attempted >= 1


def test_fugaku_llm_reference_figures() -> None:
    """The production job (DESIGN.md): gradient accumulation 7, 380e9 tokens."""
    preset = load_model_preset("fugaku-llm-13b")
    train = TrainSpec.model_validate(preset.train)
    layout = Layout.model_validate(preset.layout)
    assert micro_batches_per_replica(train, layout) == 7
    assert tokens_per_step(train, preset.model) == 2016 * 2048
    assert run_steps(train, preset.model) == math.ceil(380e9 / (2016 * 2048)) == 92_038


def test_every_training_precision_has_an_element_size() -> None:
    assert {p: element_bytes(p) for p in get_args(TrainPrecision)} == {
        "fp32": 4, "fp16": 2, "bf16": 2}


@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 6))
def test_micro_batches_times_sizes_is_the_global_batch(mb: int, dp: int, m: int) -> None:
    train = TrainSpec(global_batch=mb * dp * m, micro_batch=mb)
    assert micro_batches_per_replica(train, Layout(dp=dp)) == m


@given(st.integers(1, 64), st.floats(1.0, 1e7))
def test_run_steps_cover_the_token_budget_and_no_more(batch: int, tokens: float) -> None:
    train = TrainSpec(global_batch=batch, tokens=tokens)
    steps = run_steps(train, MODEL)
    assert steps is not None
    per_step = tokens_per_step(train, MODEL)
    assert steps * per_step >= tokens > (steps - 1) * per_step


def test_run_steps_given_or_missing() -> None:
    assert run_steps(TrainSpec(global_batch=4, steps=7), MODEL) == 7
    assert run_steps(TrainSpec(global_batch=4), MODEL) is None


def test_steps_and_tokens_together_are_refused() -> None:
    with pytest.raises(SpecError, match="train.steps: give steps .* or tokens .*, not both"):
        validate_section(TrainSpec, {"global_batch": 4, "steps": 3, "tokens": 1e6}, "", "train")


def test_breakdown_keys_are_the_contract() -> None:
    """shared/DESIGN.md: breakdown_s has compute, recompute, tp_comm, pp_comm, dp_comm,
    bubble, optimizer; engines charge every key but the bubble, which is the rest."""
    assert breakdown.BREAKDOWN_KEYS == (
        "compute", "recompute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer")
    assert set(breakdown.CHARGED_KEYS) | {breakdown.BUBBLE} == set(breakdown.BREAKDOWN_KEYS)
    assert tuple(breakdown.SHORT_LABELS) == breakdown.BREAKDOWN_KEYS
    assert len(set(breakdown.SHORT_LABELS.values())) == len(breakdown.BREAKDOWN_KEYS)


def test_every_consumer_uses_the_one_key_list() -> None:
    from fugaku_sim.sim.engine import Ledger
    from fugaku_sim.sim.plots import COLOURS
    from fugaku_sim.train.timers import Timers

    assert tuple(Timers().seconds) == breakdown.BREAKDOWN_KEYS
    assert tuple(Ledger().seconds) == breakdown.CHARGED_KEYS
    assert len(COLOURS) == len(breakdown.BREAKDOWN_KEYS)
