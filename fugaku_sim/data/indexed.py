"""Indexed token datasets byte-compatible with Megatron-LM's ``MMapIndexedDataset``.

Format (Megatron-LM ``megatron/core/datasets/indexed_dataset.py``, ``_IndexWriter`` and
``_IndexReader``; the same layout as Megatron-DeepSpeed's ``MMapIndexedDataset``):

``<prefix>.bin``: the tokens of every sequence, back to back, in the dataset dtype.

``<prefix>.idx``, little-endian:

====================  =========  ====================================================
header                9 bytes    ``b"MMIDIDX\\x00\\x00"``
version               uint64     1
dtype code            uint8      1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64,
                                 7 float32, 8 uint16
sequence count        uint64     S
document count        uint64     D + 1 (document indices, including the leading 0)
sequence lengths      int32[S]   tokens per sequence
sequence pointers     int64[S]   byte offset of each sequence in ``.bin``
document indices      int64[D+1] 0, then the sequence count after each document
====================  =========  ====================================================

We write one document per sequence, so the document indices are ``0, 1, ..., S``.
Token dtype: ``uint16`` when the vocabulary is below 65,500, else ``int32``
(Megatron's ``DType.optimal_dtype``).
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.errors import UserError
from fugaku_sim.io import temp_name

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# Megatron's DType enum: numeric code per numpy dtype.
DTYPE_CODES: dict[str, int] = {
    "uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5,
    "float64": 6, "float32": 7, "uint16": 8,
}
_HEADER_BYTES = 9 + 8 + 1 + 8 + 8  # 34


def best_fitting_dtype(vocab_size: int | None) -> type[np.number[Any]]:
    """Token dtype Megatron chooses: uint16 below 65,500 ids, else int32 (``optimal_dtype``)."""
    if vocab_size is not None and vocab_size < 65500:
        return np.uint16
    return np.int32


def _code_of(dtype: Any) -> int:
    name = np.dtype(dtype).name
    if name not in DTYPE_CODES:
        raise UserError(f"indexed dataset dtype {name} is not one Megatron knows "
                        f"({', '.join(DTYPE_CODES)})")
    return DTYPE_CODES[name]


class IndexedDatasetWriter:
    """Stream documents into ``<prefix>.bin`` and write ``<prefix>.idx`` on :meth:`finalize`.

    Tokens go to a temporary ``.bin`` as they arrive (memory holds one int per document);
    :meth:`finalize` writes the index and renames both files into place. Use as a context
    manager: leaving the block by an exception removes the temporaries.
    """

    def __init__(self, prefix: str | Path, dtype: Any) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self._code = _code_of(self.dtype)
        self._bin_final = Path(f"{self.prefix}.bin")
        self._idx_final = Path(f"{self.prefix}.idx")
        self._bin_tmp = temp_name(self._bin_final)
        self._bin = open(self._bin_tmp, "wb")  # noqa: SIM115  (closed in finalize/abort)
        self._sizes: list[int] = []
        self.num_tokens = 0

    def add_document(self, tokens: np.ndarray) -> None:
        """Append one document (a 1-D array of token ids, EOD included) as one sequence."""
        arr = np.asarray(tokens)
        if arr.ndim != 1:
            raise ValueError(f"a document must be 1-D, got shape {arr.shape}")
        self._bin.write(arr.astype(self.dtype, copy=False).tobytes(order="C"))
        self._sizes.append(int(arr.shape[0]))
        self.num_tokens += int(arr.shape[0])

    def add_dataset(self, prefix: str | Path) -> None:
        """Append every document of another dataset with the same dtype (bulk byte copy).

        Raises:
            UserError: the other dataset is corrupt or has a different dtype.
        """
        other = IndexedDataset(prefix)
        if other.dtype != self.dtype:
            raise UserError(f"{prefix}.idx: dtype {other.dtype} differs from {self.dtype}")
        with open(f"{prefix}.bin", "rb") as f:
            while block := f.read(1 << 22):
                self._bin.write(block)
        self._sizes.extend(int(n) for n in other.sizes)
        self.num_tokens += other.num_tokens

    def finalize(self) -> None:
        """Write the index and rename ``.bin`` and ``.idx`` into place."""
        self._bin.close()
        sizes = np.asarray(self._sizes, dtype=np.int32)
        pointers = np.zeros(len(sizes), dtype=np.int64)
        if len(sizes) > 1:
            np.cumsum(sizes[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        doc_idx = np.arange(len(sizes) + 1, dtype=np.int64)
        idx_tmp = temp_name(self._idx_final)
        try:
            with open(idx_tmp, "wb") as f:
                f.write(INDEX_HEADER)
                f.write(struct.pack("<Q", INDEX_VERSION))
                f.write(struct.pack("<B", self._code))
                f.write(struct.pack("<Q", len(sizes)))
                f.write(struct.pack("<Q", len(doc_idx)))
                f.write(sizes.tobytes(order="C"))
                f.write(pointers.tobytes(order="C"))
                f.write(doc_idx.tobytes(order="C"))
            os.replace(self._bin_tmp, self._bin_final)
            os.replace(idx_tmp, self._idx_final)
        finally:
            for tmp in (idx_tmp, self._bin_tmp):
                if tmp.exists():
                    tmp.unlink()

    def abort(self) -> None:
        """Close and delete the temporaries; nothing is left under ``prefix``."""
        self._bin.close()
        if self._bin_tmp.exists():
            self._bin_tmp.unlink()

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._bin.closed:
            self.finalize()


def _read_header(idx_path: Path) -> tuple[np.dtype[Any], int, int]:
    try:
        if not stat.S_ISREG(os.stat(idx_path).st_mode):  # a FIFO would block the open
            raise UserError(f"{idx_path}: not a regular file, not an indexed dataset index")
        with open(idx_path, "rb") as f:
            head = f.read(_HEADER_BYTES)
    except FileNotFoundError:
        raise UserError(f"{idx_path}: indexed dataset index not found") from None
    except OSError as exc:
        raise UserError(f"{idx_path}: cannot be read ({exc.strerror})") from None
    if len(head) < _HEADER_BYTES or head[:9] != INDEX_HEADER:
        raise UserError(f"{idx_path}: not a Megatron MMIDIDX index (bad or truncated header)")
    (version,) = struct.unpack("<Q", head[9:17])
    if version != INDEX_VERSION:
        raise UserError(f"{idx_path}: index version {version}, expected {INDEX_VERSION}")
    code = head[17]
    names = {v: k for k, v in DTYPE_CODES.items()}
    if code not in names:
        raise UserError(f"{idx_path}: unknown dtype code {code} in index")
    seq_count, doc_count = struct.unpack("<QQ", head[18:34])
    return np.dtype(names[code]), int(seq_count), int(doc_count)


class IndexedDataset:
    """Read ``<prefix>.bin``/``<prefix>.idx``; ``ds[i]`` is a read-only view of document ``i``.

    Raises:
        UserError: a missing, truncated or inconsistent ``.idx`` or ``.bin`` (names the file).
    """

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        idx_path, bin_path = Path(f"{self.prefix}.idx"), Path(f"{self.prefix}.bin")
        self.dtype, seq_count, doc_count = _read_header(idx_path)
        need = _HEADER_BYTES + seq_count * (4 + 8) + doc_count * 8
        if idx_path.stat().st_size != need:
            raise UserError(f"{idx_path}: truncated or corrupt index "
                            f"({idx_path.stat().st_size} bytes, header implies {need})")
        index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        off = _HEADER_BYTES
        self.sizes = np.frombuffer(index, dtype=np.int32, count=seq_count, offset=off)
        self.pointers = np.frombuffer(index, dtype=np.int64, count=seq_count,
                                      offset=off + 4 * seq_count)
        self.document_indices = np.frombuffer(index, dtype=np.int64, count=doc_count,
                                              offset=off + 12 * seq_count)
        self.num_tokens = int(self.sizes.sum(dtype=np.int64))
        self._check_consistent(idx_path, bin_path)
        self._bin: np.ndarray = (
            np.memmap(bin_path, mode="r", dtype=self.dtype) if self.num_tokens
            else np.zeros(0, dtype=self.dtype))

    def _check_consistent(self, idx_path: Path, bin_path: Path) -> None:
        item = self.dtype.itemsize
        expect = np.zeros(len(self.sizes), dtype=np.int64)
        if len(self.sizes) > 1:
            np.cumsum(self.sizes[:-1].astype(np.int64) * item, out=expect[1:])
        if (self.sizes < 0).any() or not np.array_equal(expect, self.pointers):
            raise UserError(f"{idx_path}: corrupt index (sequence pointers do not follow lengths)")
        if len(self.document_indices) == 0 or self.document_indices[0] != 0:
            raise UserError(f"{idx_path}: corrupt index (document indices must start at 0)")
        if (np.diff(self.document_indices) < 0).any() \
                or self.document_indices[-1] != len(self.sizes):
            raise UserError(f"{idx_path}: corrupt index (document indices must rise to the "
                            f"sequence count, {len(self.sizes)})")
        try:
            bin_bytes = bin_path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"{bin_path}: indexed dataset data file not found") from None
        if bin_bytes != self.num_tokens * item:
            raise UserError(f"{bin_path}: truncated or corrupt data file ({bin_bytes} bytes, "
                            f"index implies {self.num_tokens * item})")

    def token_range(self) -> tuple[int, int]:
        """The smallest and largest token id of the data file (reads all of it, in blocks).

        Raises:
            ValueError: the shard holds no tokens.
        """
        block = 1 << 24
        parts = [(int(c.min()), int(c.max())) for c in
                 (self._bin[i:i + block] for i in range(0, self.num_tokens, block))]
        if not parts:
            raise ValueError(f"{self.prefix}: no tokens")
        return min(p[0] for p in parts), max(p[1] for p in parts)

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"document {i} out of range for {n} documents")
        i %= n
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start:start + int(self.sizes[i])]


def check_token_ids(ds: IndexedDataset, vocab: int | None, what: str = "--data",
                    vocab_name: str = "model.vocab") -> None:
    """Refuse a shard whose values are not token ids, or (given ``vocab``) hold an id
    outside [0, vocab): a shard written with another tokenizer, found before an embedding
    lookup or a decode goes out of range (one pass over the data, about a second a
    gigabyte). ``what`` names the input in the message, ``vocab_name`` the vocabulary.

    Raises:
        UserError: floating-point values, or an id outside the vocabulary (the first named).
    """
    if np.issubdtype(ds.dtype, np.floating):
        raise UserError(f"{what}: shard {ds.prefix} holds {ds.dtype} values, not token ids")
    if vocab is None or not ds.num_tokens:
        return
    low, high = ds.token_range()
    if low < 0 or high >= vocab:
        raise UserError(f"{what}: shard {ds.prefix} holds token id {high if high >= vocab else low}"
                        f", outside {vocab_name} ({vocab}); retokenize with the model's "
                        "tokenizer or use a model with a larger vocabulary")
