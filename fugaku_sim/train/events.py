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
import time
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
    """Scalars of each step record as TensorBoard events (a no-op without tensorboardX).

    Written in the calling thread, between steps, with tensorboardX's synchronous
    ``EventsWriter`` (the record writer its ``SummaryWriter`` wraps): each step's events are
    on disk when :meth:`write` returns. ``SummaryWriter`` hands events to a worker thread
    through a ``multiprocessing.Queue`` of 10 (with its own feeder thread), so a step's 12
    scalars were pickled, serialised and written by two threads while the next step ran,
    holding the interpreter lock in the middle of the step's timed work: measured on
    gpt-micro (one rank, 45 ms steps), 0.45-0.6 ms a step outside every trainer timer
    (1.03, 1.03, 0.89 ms with ``SummaryWriter`` against 0.46, 0.50, 0.43 without events),
    and a ``flush()`` that did not wait for the queue, so a killed run could lose the
    steps it had logged.
    """

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def open(cls, folder: Path, resume_step: int) -> EventLog:
        """A writer of a new event file in ``folder``; after ``resume_step`` > 0 the file first
        purges the steps past it. Prints :data:`OFF_NOTE` on stderr without tensorboardX."""
        try:
            import tensorboardX  # noqa: F401  (the package, before any cached submodule)
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event, SessionLog
        except ImportError:
            print(OFF_NOTE, file=sys.stderr, flush=True)
            return cls(None)
        folder.mkdir(parents=True, exist_ok=True)
        # tensorboardX names a file by the second and the host only: the suffix keeps a run
        # resumed within the same second from overwriting the file before it, and sorts after
        suffix = f".from-step-{resume_step:010d}"
        writer = EventsWriter(str(folder / "events"), suffix)
        if resume_step > 0:  # TensorBoard hides what earlier files hold from this step on
            purge = resume_step + 1
            writer.write_event(Event(step=purge, file_version="brain.Event:2"))
            writer.write_event(Event(step=purge, session_log=SessionLog(
                status=SessionLog.START)))
        writer.flush()
        return cls(writer)

    def write(self, record: dict[str, Any]) -> None:
        """The record's scalars at its step, flushed (a killed run keeps what it logged)."""
        if self.writer is None:
            return
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        breakdown = record.get("breakdown_s", {})
        values = [(tag, record.get(key)) for tag, key in SCALARS]
        values += [(f"breakdown_s/{key}", breakdown.get(key)) for key in BREAKDOWN_KEYS]
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v))
                                 for tag, v in values if v is not None])
        self.writer.write_event(Event(summary=summary, step=int(record["step"]),
                                      wall_time=time.time()))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


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
