"""Megatron MMIDIDX format: round trip, header bytes, corrupt files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.data.indexed import (
    INDEX_HEADER,
    IndexedDataset,
    IndexedDatasetWriter,
    best_fitting_dtype,
)
from fugaku_sim.errors import UserError


def write_docs(prefix: Path, docs: list[list[int]], dtype: type = np.uint16) -> None:
    with IndexedDatasetWriter(prefix, dtype) as w:
        for d in docs:
            w.add_document(np.asarray(d, dtype=dtype))


def test_header_bytes_follow_megatron_layout(tmp_path: Path) -> None:
    docs = [[5, 6, 2], [7, 2], [9, 9, 9, 9, 2]]
    write_docs(tmp_path / "x", docs)
    raw = (tmp_path / "x.idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00" == INDEX_HEADER
    assert struct.unpack("<Q", raw[9:17]) == (1,)
    assert raw[17] == 8  # uint16 in Megatron's DType enum
    seq, doc = struct.unpack("<QQ", raw[18:34])
    assert (seq, doc) == (3, 4)
    lengths = np.frombuffer(raw, np.int32, 3, 34)
    pointers = np.frombuffer(raw, np.int64, 3, 34 + 12)
    doc_idx = np.frombuffer(raw, np.int64, 4, 34 + 12 + 24)
    assert lengths.tolist() == [3, 2, 5]
    assert pointers.tolist() == [0, 6, 10]  # bytes: 2 per uint16 token
    assert doc_idx.tolist() == [0, 1, 2, 3]
    assert len(raw) == 34 + 12 * 3 + 8 * 4
    assert (tmp_path / "x.bin").read_bytes() == np.array(sum(docs, []), np.uint16).tobytes()


@settings(max_examples=40, deadline=None)
@given(docs=st.lists(st.lists(st.integers(0, 65499), min_size=0, max_size=50), max_size=30),
       wide=st.booleans())
def test_round_trip_every_document(tmp_path_factory: pytest.TempPathFactory,
                                   docs: list[list[int]], wide: bool) -> None:
    dtype = np.int32 if wide else np.uint16
    prefix = tmp_path_factory.mktemp("rt") / "ds"
    write_docs(prefix, docs, dtype)
    ds = IndexedDataset(prefix)
    assert len(ds) == len(docs)
    assert ds.dtype == np.dtype(dtype)
    assert ds.sizes.tolist() == [len(d) for d in docs]
    assert ds.num_tokens == sum(len(d) for d in docs)
    for i, d in enumerate(docs):
        assert ds[i].tolist() == d


def test_best_fitting_dtype_matches_megatron() -> None:
    assert best_fitting_dtype(8192) is np.uint16
    assert best_fitting_dtype(65499) is np.uint16
    assert best_fitting_dtype(65500) is np.int32
    assert best_fitting_dtype(None) is np.int32


@pytest.mark.hostile
def test_truncated_idx_is_a_user_error(tmp_path: Path) -> None:
    write_docs(tmp_path / "x", [[1, 2, 3], [4, 5]])
    idx = tmp_path / "x.idx"
    idx.write_bytes(idx.read_bytes()[:-5])
    with pytest.raises(UserError, match=r"x\.idx.*truncated"):
        IndexedDataset(tmp_path / "x")
    idx.write_bytes(b"MMID")
    with pytest.raises(UserError, match=r"x\.idx"):
        IndexedDataset(tmp_path / "x")


@pytest.mark.hostile
def test_truncated_bin_is_a_user_error(tmp_path: Path) -> None:
    write_docs(tmp_path / "x", [[1, 2, 3], [4, 5]])
    b = tmp_path / "x.bin"
    b.write_bytes(b.read_bytes()[:-2])
    with pytest.raises(UserError, match=r"x\.bin.*truncated"):
        IndexedDataset(tmp_path / "x")


@pytest.mark.hostile
def test_missing_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        IndexedDataset(tmp_path / "nothing")


def test_failed_writer_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IndexedDatasetWriter(tmp_path / "x", np.uint16) as w:
        w.add_document(np.array([1, 2], np.uint16))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_add_dataset_concatenates(tmp_path: Path) -> None:
    write_docs(tmp_path / "a", [[1, 2], [3]])
    write_docs(tmp_path / "b", [[4, 5, 6]])
    with IndexedDatasetWriter(tmp_path / "c", np.uint16) as w:
        w.add_dataset(tmp_path / "a")
        w.add_dataset(tmp_path / "b")
    ds = IndexedDataset(tmp_path / "c")
    assert [ds[i].tolist() for i in range(len(ds))] == [[1, 2], [3], [4, 5, 6]]
    assert ds[-1].tolist() == [4, 5, 6]


@pytest.mark.hostile
def test_an_index_that_is_a_folder_or_a_pipe_is_a_user_error(tmp_path: Path) -> None:
    import os

    (tmp_path / "d.idx").mkdir()
    with pytest.raises(UserError, match=r"d\.idx: not a regular file"):
        IndexedDataset(tmp_path / "d")
    os.mkfifo(tmp_path / "p.idx")  # opening it would wait for a writer forever
    with pytest.raises(UserError, match=r"p\.idx: not a regular file"):
        IndexedDataset(tmp_path / "p")


@pytest.mark.hostile
def test_document_indices_beyond_the_sequences_are_a_user_error(tmp_path: Path) -> None:
    write_docs(tmp_path / "x", [[1, 2, 3], [4, 5]])
    idx = tmp_path / "x.idx"
    data = bytearray(idx.read_bytes())
    data[-8:] = struct.pack("<q", 99)  # the last document index: past the 2 sequences
    idx.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"document indices must rise to the sequence count"):
        IndexedDataset(tmp_path / "x")


def test_token_range_reads_every_block(tmp_path: Path) -> None:
    write_docs(tmp_path / "x", [[7, 3, 9], [4, 65000]])
    assert IndexedDataset(tmp_path / "x").token_range() == (3, 65000)
