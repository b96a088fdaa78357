"""TensorBoard event files of a training run, beside ``metrics.jsonl`` (rank 0 only).

Written with tensorboardX (the ``tensorboard`` extra: ``pip install -e ".[tensorboard]"``; it
needs neither torch nor TensorFlow); without it the run says once that events are off and
``metrics.jsonl`` alone records the steps. ``tensorboard --logdir results/train/run`` shows:

- ``loss/train``, ``loss/valid`` (nats per token), ``lr``, ``grad_norm``, ``step_time_s``,
  ``tokens_per_s``, and ``breakdown_s/<term>`` for each term of the measured step breakdown,
  at the optimizer step (``global_step`` = ``step`` of ``metrics.jsonl``): the keys of
  ``metrics.jsonl``, with the two losses on one chart.

A resumed run writes a new event file that starts with TensorBoard's purge marker at the step
after the checkpoint, so the steps a killed run did after its last checkpoint are hidden, as
they are dropped from ``metrics.jsonl``. :func:`read_scalars` reads the files back the way
TensorBoard does (tensorboardX's own protocol buffers and record checksums).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

from fugaku_sim.train.timers import BREAKDOWN_KEYS

#: (TensorBoard tag, key of a metrics.jsonl record)
SCALARS = (("loss/train", "loss"), ("loss/valid", "val_loss"), ("lr", "lr"),
           ("grad_norm", "grad_norm"), ("step_time_s", "step_time_s"),
           ("tokens_per_s", "tokens_per_s"))
EVENTS_GLOB = "events.out.tfevents.*"
OFF_NOTE = ("fugaku-sim: note: TensorBoard events are off (tensorboardX is not installed; "
            'pip install -e ".[tensorboard]"); metrics.jsonl has every step')


class EventLog:
    """Scalars of each step record as TensorBoard events (a no-op without tensorboardX)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def open(cls, folder: Path, resume_step: int) -> EventLog:
        """A writer of a new event file in ``folder``; after ``resume_step`` > 0 the file first
        purges the steps past it. Prints :data:`OFF_NOTE` on stderr without tensorboardX."""
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            print(OFF_NOTE, file=sys.stderr, flush=True)
            return cls(None)
        purge = resume_step + 1 if resume_step > 0 else None
        # tensorboardX names a file by the second and the host only: the suffix keeps a run
        # resumed within the same second from overwriting the file before it, and sorts after
        suffix = f".from-step-{resume_step:010d}"
        return cls(SummaryWriter(str(folder), purge_step=purge, filename_suffix=suffix))

    def write(self, record: dict[str, Any]) -> None:
        """The record's scalars at its step, flushed (a killed run keeps what it logged)."""
        if self.writer is None:
            return
        step = record["step"]
        for tag, key in SCALARS:
            if record.get(key) is not None:
                self.writer.add_scalar(tag, float(record[key]), step)
        for key in BREAKDOWN_KEYS:
            value = record.get("breakdown_s", {}).get(key)
            if value is not None:
                self.writer.add_scalar(f"breakdown_s/{key}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_records(path: Path) -> list[bytes]:
    """The records of one TFRecord file (length, masked CRC-32C of the length, data, masked
    CRC-32C of the data; tensorboardX's ``record_writer``).

    Raises:
        ValueError: a truncated record or a checksum that does not match.
    """
    from tensorboardX.record_writer import masked_crc32c

    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        if at + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {at}")
        header = data[at:at + 8]
        (length,) = struct.unpack("Q", header)
        (header_crc,) = struct.unpack("I", data[at + 8:at + 12])
        body = data[at + 12:at + 12 + length]
        if header_crc != masked_crc32c(header) or len(body) < length \
                or data[at + 12 + length:at + 16 + length] != struct.pack("I", masked_crc32c(body)):
            raise ValueError(f"{path}: bad record at byte {at}")
        out.append(body)
        at += 16 + length
    return out


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder`` by tag, as (step, value) in file order,
    with steps at or past a purge marker dropped from the files before it (as TensorBoard
    shows them).

    Raises:
        ImportError: tensorboardX is not installed.
        ValueError: a damaged event file.
    """
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob(EVENTS_GLOB)):
        for raw in read_records(path):
            event = Event.FromString(raw)
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                scalars = {tag: [(s, v) for s, v in points if s < event.step]
                           for tag, points in scalars.items()}
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
