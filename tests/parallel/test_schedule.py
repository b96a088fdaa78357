"""Pipeline schedules: exact orders for small cases, invariants for all."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.parallel import (
    max_in_flight,
    pipeline_schedule,
    stage_layers,
    stage_of_virtual,
    virtual_stage,
)
from fugaku_sim.parallel.schedule import schedule_in_flight


def _text(ops) -> str:
    return " ".join(map(str, ops))


def test_one_f_one_b_exact() -> None:
    assert _text(pipeline_schedule("1f1b", 4, 0, 4)) == "F0 F1 F2 F3 B0 B1 B2 B3"
    assert _text(pipeline_schedule("1f1b", 4, 1, 4)) == "F0 F1 F2 B0 F3 B1 B2 B3"
    assert _text(pipeline_schedule("1f1b", 4, 3, 4)) == "F0 B0 F1 B1 F2 B2 F3 B3"


def test_fewer_micro_batches_than_stages() -> None:
    # Fugaku-LLM: 7 micro-batches over 8 stages
    assert _text(pipeline_schedule("1f1b", 8, 0, 7)) == " ".join(
        [f"F{i}" for i in range(7)] + [f"B{i}" for i in range(7)]
    )


def test_gpipe_exact() -> None:
    assert _text(pipeline_schedule("gpipe", 2, 1, 3)) == "F0 F1 F2 B0 B1 B2"


def test_interleaved_matches_megatron_order() -> None:
    # p = 2, v = 2, m = 4; stage 1 warm-up = (2-1-1)*2 + (2-1)*2 = 2 forwards
    ops = pipeline_schedule("interleaved", 2, 1, 4, chunks=2)
    assert _text(ops) == "F0 F1 F0.1 B0.1 F1.1 B1.1 F2 B0 F3 B1 F2.1 B2.1 F3.1 B3.1 B2 B3"


def test_interleaved_needs_multiple_of_stages() -> None:
    with pytest.raises(ValueError, match="multiple of stages"):
        pipeline_schedule("interleaved", 4, 0, 6, chunks=2)


@given(
    st.sampled_from(["1f1b", "gpipe"]),
    st.integers(1, 8),
    st.integers(1, 16),
    st.data(),
)
def test_every_micro_batch_once_each_way(kind, stages, m, data) -> None:
    stage = data.draw(st.integers(0, stages - 1))
    ops = pipeline_schedule(kind, stages, stage, m)
    assert Counter((o.kind, o.micro_batch) for o in ops) == Counter(
        [("F", i) for i in range(m)] + [("B", i) for i in range(m)]
    )
    seen_f = set()
    for op in ops:  # a backward never precedes its forward
        if op.kind == "F":
            seen_f.add(op.micro_batch)
        else:
            assert op.micro_batch in seen_f


@given(st.integers(1, 8), st.integers(1, 16), st.data())
def test_one_f_one_b_bounds_activations(stages, m, data) -> None:
    stage = data.draw(st.integers(0, stages - 1))
    assert max_in_flight(pipeline_schedule("1f1b", stages, stage, m)) == min(stages - stage, m)
    assert max_in_flight(pipeline_schedule("gpipe", stages, stage, m)) == m


@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_interleaved_covers_every_chunk(stages, chunks, groups, data) -> None:
    m = stages * groups
    stage = data.draw(st.integers(0, stages - 1))
    ops = pipeline_schedule("interleaved", stages, stage, m, chunks)
    expected = [(k, i, c) for k in "FB" for i in range(m) for c in range(chunks)]
    assert Counter((o.kind, o.micro_batch, o.chunk) for o in ops) == Counter(expected)


@given(st.sampled_from(["1f1b", "gpipe", "interleaved"]), st.integers(1, 6), st.integers(1, 4),
       st.integers(1, 4), st.data())
def test_in_flight_in_closed_form_matches_the_listed_schedule(kind, stages, chunks, groups,
                                                              data) -> None:
    m = stages * groups if kind == "interleaved" else data.draw(st.integers(1, 24))
    chunks = chunks if kind == "interleaved" else 1
    stage = data.draw(st.integers(0, stages - 1))
    listed = max_in_flight(pipeline_schedule(kind, stages, stage, m, chunks))
    assert schedule_in_flight(kind, stages, stage, m, chunks) == listed


def test_in_flight_of_a_huge_step_is_immediate() -> None:
    assert schedule_in_flight("1f1b", 8, 0, 10**12) == 8
    assert schedule_in_flight("gpipe", 8, 0, 10**12) == 10**12
    with pytest.raises(ValueError, match="multiple of stages"):
        schedule_in_flight("interleaved", 4, 0, 6, 2)


def test_stage_layers_cover_model() -> None:
    assert [stage_layers(40, 8, s) for s in range(8)][3] == range(15, 20)
    covered = sorted(
        layer for s in range(2) for c in range(2) for layer in stage_layers(8, 2, s, 2, c)
    )
    assert covered == list(range(8))


@given(st.integers(1, 8), st.integers(1, 4), st.data())
def test_virtual_stage_and_its_inverse(stages: int, chunks: int, data) -> None:
    stage = data.draw(st.integers(0, stages - 1))
    chunk = data.draw(st.integers(0, chunks - 1))
    v = virtual_stage(stage, chunk, stages)
    assert 0 <= v < stages * chunks and stage_of_virtual(v, stages) == stage
