"""A sentencepiece model file read without protobuf: its pieces and the settings that decide
how text is encoded.

A ``.model`` file is a serialised ``sentencepiece.ModelProto`` (proto2; field numbers from
sentencepiece's ``src/sentencepiece_model.proto``, v0.2). The protobuf wire format is small
(a varint key ``field << 3 | wire type``, then a varint, a 4- or 8-byte value or a
length-prefixed string; protobuf.dev/programming-guides/encoding), so it is read here
directly: the ``protobuf`` package is then not a dependency, and sentencepiece's own Python
API does not expose the normaliser spec.

Used fields::

    ModelProto       1 pieces (SentencePiece, repeated), 2 trainer_spec, 3 normalizer_spec
    SentencePiece    1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
    TrainerSpec      3 model_type (UNIGRAM 1, BPE 2, WORD 3, CHAR 4), 24
                     treat_whitespace_as_suffix, 35 byte_fallback, 40-43 unk/bos/eos/pad id
    NormalizerSpec   1 name, 2 precompiled_charsmap (bytes), 3 add_dummy_prefix,
                     4 remove_extra_whitespaces, 5 escape_whitespaces (all three default true)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from fugaku_sim.errors import UserError

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


class PieceType(IntEnum):
    """``ModelProto.SentencePiece.Type``."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry; its id is its index in :attr:`SpmModel.pieces`."""

    text: str
    score: float
    type: PieceType


@dataclass(frozen=True)
class SpmModel:
    """The parts of a sentencepiece model that decide its ids."""

    pieces: tuple[Piece, ...]
    model_type: str
    byte_fallback: bool
    treat_whitespace_as_suffix: bool
    unk_id: int
    bos_id: int
    eos_id: int
    pad_id: int
    normalizer_name: str
    precompiled_charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool

    def ids_of(self, kind: PieceType) -> list[int]:
        """Ids of the pieces of one type, ascending."""
        return [i for i, p in enumerate(self.pieces) if p.type == kind]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def spans(buf: bytes) -> list[tuple[int, int | bytes, int, int]]:
    """``(field number, value, start, end)`` of every field of one message, in file order;
    varints and fixed-width values as unsigned ints, length-delimited ones as bytes;
    ``buf[start:end]`` is the field's whole encoding (key included).

    Raises:
        ValueError: not a protobuf message (truncated, or an unknown wire type).
    """
    out: list[tuple[int, int | bytes, int, int]] = []
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        elif wire == _BYTES:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(buf) or number == 0:
            raise ValueError("truncated message")
        out.append((number, value, start, pos))
    return out


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` of every field of one message (see :func:`spans`).

    Raises:
        ValueError: not a protobuf message.
    """
    return [(number, value) for number, value, _, _ in spans(buf)]


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def with_scores(data: bytes, scores: list[float]) -> bytes:
    """The serialised model ``data`` with piece ``i``'s score replaced by ``scores[i]``
    (stored as float32); every other byte as it was.

    Raises:
        ValueError: not a sentencepiece model, or not one score per piece.
    """
    out = bytearray()
    n = 0
    for number, value, start, end in spans(data):
        if number != 1 or not isinstance(value, bytes):
            out += data[start:end]
            continue
        if n >= len(scores):
            raise ValueError(f"{len(scores)} scores for more pieces")
        piece = b"".join(value[s:e] for num, _, s, e in spans(value) if num != 2)
        piece += _encode_varint(2 << 3 | _FIXED32) + struct.pack("<f", scores[n])
        out += _field(1, piece)
        n += 1
    if n != len(scores):
        raise ValueError(f"{len(scores)} scores for {n} pieces")
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    return _encode_varint(number << 3 | _BYTES) + _encode_varint(len(payload)) + payload


def without_training_paths(data: bytes) -> bytes:
    """The serialised model ``data`` without the trainer's ``input`` and ``model_prefix``
    (TrainerSpec fields 1 and 2: paths on the machine that trained it, not used to encode).

    Raises:
        ValueError: not a protobuf message.
    """
    out = bytearray()
    for number, value, start, end in spans(data):
        if number == 2 and isinstance(value, bytes):
            out += _field(2, b"".join(value[s:e] for num, _, s, e in spans(value)
                                      if num not in (1, 2)))
        else:
            out += data[start:end]
    return bytes(out)


def same_model(a: Path, b: Path) -> bool:
    """Whether two model files encode alike: equal bytes once the trainer's paths are
    removed (a release's copy has none, see :func:`without_training_paths`).

    Raises:
        UserError: a file is unreadable or not a protobuf message.
    """
    def content(path: Path) -> bytes:
        try:
            return without_training_paths(path.read_bytes())
        except OSError as exc:
            raise UserError(f"{path}: unreadable ({exc.strerror})") from None
        except ValueError as exc:
            raise UserError(f"{path}: not a sentencepiece model ({exc})") from None

    return content(a) == content(b)


def _last(items: list[tuple[int, int | bytes]], number: int) -> int | bytes | None:
    """The last value of a singular field (protobuf's rule for repeated occurrences)."""
    found = [v for n, v in items if n == number]
    return found[-1] if found else None


def _int(items: list[tuple[int, int | bytes]], number: int, default: int) -> int:
    """A varint field read as int32 (negative values are sign-extended to 64 bits).

    Raises:
        ValueError: the field is length-delimited.
    """
    value = _last(items, number)
    if value is None:
        return default
    if not isinstance(value, int):
        raise ValueError(f"field {number} is not a number")
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes(items: list[tuple[int, int | bytes]], number: int) -> bytes:
    """A length-delimited field (string, bytes or message); empty when absent.

    Raises:
        ValueError: the field is a number.
    """
    value = _last(items, number)
    if value is None:
        return b""
    if not isinstance(value, bytes):
        raise ValueError(f"field {number} is not a string")
    return value


def _piece(buf: bytes) -> Piece:
    items = fields(buf)
    score = _int(items, 2, 0) & 0xFFFFFFFF  # fixed32 bits of a float
    return Piece(_bytes(items, 1).decode("utf-8"),
                 struct.unpack("<f", score.to_bytes(4, "little"))[0],
                 PieceType(_int(items, 3, PieceType.NORMAL)))


def parse_model(data: bytes) -> SpmModel:
    """The :class:`SpmModel` serialised in ``data``.

    Raises:
        ValueError: not a sentencepiece model (malformed message, unknown piece type, a
            string that is not UTF-8, no pieces).
    """
    top = fields(data)
    pieces = tuple(_piece(v) for n, v in top if n == 1 and isinstance(v, bytes))
    if not pieces:
        raise ValueError("no pieces")
    trainer, norm = fields(_bytes(top, 2)), fields(_bytes(top, 3))
    return SpmModel(
        pieces=pieces, model_type=MODEL_TYPES.get(_int(trainer, 3, 1), "unknown"),
        byte_fallback=bool(_int(trainer, 35, 0)),
        treat_whitespace_as_suffix=bool(_int(trainer, 24, 0)),
        unk_id=_int(trainer, 40, 0), bos_id=_int(trainer, 41, 1), eos_id=_int(trainer, 42, 2),
        pad_id=_int(trainer, 43, -1), normalizer_name=_bytes(norm, 1).decode("utf-8"),
        precompiled_charsmap=_bytes(norm, 2), add_dummy_prefix=bool(_int(norm, 3, 1)),
        remove_extra_whitespaces=bool(_int(norm, 4, 1)),
        escape_whitespaces=bool(_int(norm, 5, 1)))


def read_model(path: Path) -> SpmModel:
    """The sentencepiece model in the file ``path``.

    Raises:
        UserError: missing, unreadable or not a sentencepiece model.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.strerror})") from None
    try:
        return parse_model(data)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise UserError(f"{path}: not a sentencepiece model ({exc})") from None
