"""TensorBoard events beside metrics.jsonl: the scalars read back with tensorboardX's own
records, the purge of a resumed run's replayed steps, and a run without tensorboardX."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fugaku_sim.train.events import EVENTS_GLOB, OFF_NOTE, EventLog, read_records, read_scalars
from fugaku_sim.train.metrics import MetricsLog
from fugaku_sim.train.timers import BREAKDOWN_KEYS

pytest.importorskip("tensorboardX")


def record(step: int, loss: float) -> dict:
    return {"step": step, "loss": loss, "lr": 1e-3 * step, "grad_norm": 0.5, "tokens": 64,
            "tokens_per_s": 1000.0 + step, "step_time_s": 0.064,
            "breakdown_s": dict.fromkeys(BREAKDOWN_KEYS, 0.01)}


def test_the_events_hold_every_step_of_metrics_jsonl(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl", resume_step=0)
    for step, loss in enumerate([7.5, 7.0, 6.25], 1):
        log.write(record(step, loss) | ({"val_loss": 6.5} if step == 3 else {}))
    log.close()
    scalars = read_scalars(tmp_path)
    assert scalars["loss/train"] == [(1, 7.5), (2, 7.0), (3, 6.25)]
    assert scalars["loss/valid"] == [(3, 6.5)]
    assert [s for s, _ in scalars["lr"]] == [1, 2, 3]
    assert scalars["lr"][2][1] == pytest.approx(3e-3)
    assert {f"breakdown_s/{k}" for k in BREAKDOWN_KEYS} <= set(scalars)
    assert len(list(tmp_path.glob(EVENTS_GLOB))) == 1  # beside metrics.jsonl


def test_a_resumed_run_hides_the_steps_after_its_checkpoint(tmp_path: Path) -> None:
    first = EventLog.open(tmp_path, resume_step=0)
    for step, loss in [(1, 9.0), (2, 8.0), (3, 7.9)]:  # killed after step 3, checkpoint at 2
        first.write(record(step, loss))
    first.close()
    again = EventLog.open(tmp_path, resume_step=2)
    for step, loss in [(3, 7.0), (4, 6.0)]:
        again.write(record(step, loss))
    again.close()
    assert read_scalars(tmp_path)["loss/train"] == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0)]


def test_a_step_is_on_disk_when_write_returns_and_no_thread_writes(tmp_path: Path) -> None:
    """Events are written in the caller's thread: what a killed run logged is in the file,
    and nothing runs beside the next step (tensorboardX's SummaryWriter queued events to
    worker threads, which wrote them during the next step)."""
    import threading

    before = threading.active_count()
    log = EventLog.open(tmp_path, resume_step=0)
    log.write(record(1, 7.5))
    assert threading.active_count() == before
    path = next(tmp_path.glob(EVENTS_GLOB))
    assert len(read_records(path)) == 2  # the file-version event and step 1, before close
    assert read_scalars(tmp_path)["loss/train"] == [(1, 7.5)]
    log.close()


def test_a_damaged_event_file_is_refused(tmp_path: Path) -> None:
    log = EventLog.open(tmp_path, resume_step=0)
    log.write(record(1, 1.0))
    log.close()
    path = next(tmp_path.glob(EVENTS_GLOB))
    assert read_records(path)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # a flipped byte in the last record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad record"):
        read_records(path)


def test_without_tensorboardx_the_run_says_once_that_events_are_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails
    log = MetricsLog(tmp_path / "metrics.jsonl", resume_step=0)
    for step in (1, 2):
        log.write(record(step, 1.0))
    log.close()
    assert capsys.readouterr().err.splitlines() == [OFF_NOTE]
    assert not list(tmp_path.glob(EVENTS_GLOB))
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
