"""Tensor-parallel splits: every kind round-trips, parts have the shapes the table promises,
query/key/value blocks split by heads (and key/value heads are copied when fewer than ranks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fugaku_sim.tensors.split import COL, REP, ROW, VOCAB, local_shape, qkv_split, shard, unshard


def arange(*shape: int) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)


@pytest.mark.parametrize(("split", "shape", "want"), [
    (REP, (6,), [(6,), (6,)]),
    (VOCAB, (8, 3), [(4, 3), (4, 3)]),
    (ROW, (8, 3), [(4, 3), (4, 3)]),
    (COL, (3, 8), [(3, 4), (3, 4)]),
    (COL, (8,), [(4,), (4,)]),
    (qkv_split(2, 2), (3, 12), [(3, 6), (3, 6)]),
    (qkv_split(2, 2), (12,), [(6,), (6,)]),
])
def test_parts_have_the_local_shape_and_round_trip(split, shape, want) -> None:
    full = arange(*shape)
    parts = [shard(full, split, 2, i) for i in range(2)]
    assert [p.shape for p in parts] == want == [local_shape(shape, split, 2)] * 2
    np.testing.assert_array_equal(unshard(parts, split), full)


def test_row_and_vocab_take_rows_col_takes_columns() -> None:
    full = arange(4, 6)
    np.testing.assert_array_equal(shard(full, ROW, 2, 1), full[2:])
    np.testing.assert_array_equal(shard(full, VOCAB, 2, 0), full[:2])
    np.testing.assert_array_equal(shard(full, COL, 3, 2), full[:, 4:])


def test_qkv_rank_holds_its_heads_of_q_k_and_v() -> None:
    """C = 4, two heads of width 2: rank 0 holds head 0 of q, k and v (Megatron-LM)."""
    full = arange(4, 12)
    np.testing.assert_array_equal(shard(full, qkv_split(2, 2), 2, 0),
                                  full[:, [0, 1, 4, 5, 8, 9]])
    np.testing.assert_array_equal(shard(full, qkv_split(2, 2), 2, 1),
                                  full[:, [2, 3, 6, 7, 10, 11]])


def test_grouped_query_heads_are_copied_when_fewer_than_ranks() -> None:
    """4 query heads, 2 key/value heads, width 1, tp 4: rank r holds query head r and key and
    value head r // 2; the key/value heads reassemble from any copy."""
    split = qkv_split(4, 2)
    full = arange(3, 8)  # columns: q0 q1 q2 q3 | k0 k1 | v0 v1
    parts = [shard(full, split, 4, r) for r in range(4)]
    assert local_shape((3, 8), split, 4) == (3, 3)
    np.testing.assert_array_equal(parts[3], full[:, [3, 5, 7]])
    np.testing.assert_array_equal(parts[0], full[:, [0, 4, 6]])
    np.testing.assert_array_equal(unshard(parts, split), full)
    assert local_shape((3, 8), split, 2) == (3, 4)  # 2 divides both: plain split


def test_padded_vocabulary_and_indivisible_splits() -> None:
    """A vocabulary that tp does not divide is padded to ceil(V / tp) rows for counting;
    the other splits, and sharding itself, need tp to divide."""
    assert local_shape((50257, 768), VOCAB, 2) == (25129, 768)
    with pytest.raises(ValueError, match="equal parts"):
        shard(arange(5, 2), VOCAB, 2, 0)
    with pytest.raises(ValueError, match="equal parts"):
        local_shape((3, 5), COL, 2)
    with pytest.raises(ValueError, match="heads"):
        local_shape((2, 9), qkv_split(3, 3), 2)


@given(kind=st.sampled_from(["rep", "vocab", "row", "col", "qkv"]),
       tp=st.sampled_from([1, 2, 4]), heads=st.sampled_from([4, 8]),
       kv=st.sampled_from([1, 2, 4]), width=st.integers(1, 3))
def test_any_split_round_trips(kind: str, tp: int, heads: int, kv: int, width: int) -> None:
    split = {"rep": REP, "vocab": VOCAB, "row": ROW, "col": COL,
             "qkv": qkv_split(heads, kv)}[kind]
    shape = {"vocab": (heads * width, 2), "row": (heads * width, 2), "col": (2, heads * width),
             "rep": (2, 3), "qkv": (2, (heads + 2 * kv) * width)}[kind]
    full = arange(*shape)
    parts = [shard(full, split, tp, i) for i in range(tp)]
    assert all(p.shape == local_shape(shape, split, tp) for p in parts)
    np.testing.assert_array_equal(unshard(parts, split), full)
    if kind not in ("rep", "qkv"):
        assert sum(p.size for p in parts) == full.size
