"""The layer split: every layer in exactly one chunk, in virtual-stage order; one first and
one last chunk; the docstring examples hold."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.parallel import partition, stage_chunks


def test_docstring_examples() -> None:
    assert doctest.testmod(partition).failed == 0


@given(stages=st.integers(1, 6), chunks=st.integers(1, 3), per=st.integers(1, 4))
def test_chunks_cover_the_model_in_order(stages: int, chunks: int, per: int) -> None:
    layers = stages * chunks * per
    every = [c for s in range(stages) for c in stage_chunks(layers, stages, s, chunks)]
    by_virtual = sorted(every, key=lambda c: c.virtual)
    assert [c.virtual for c in by_virtual] == list(range(stages * chunks))
    assert [layer for c in by_virtual for layer in c.layers] == list(range(layers))
    assert [c.virtual for c in every if c.first] == [0]
    assert [c.virtual for c in every if c.last] == [stages * chunks - 1]
    assert all(len(c.layers) == per for c in every)
