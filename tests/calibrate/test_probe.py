"""The machine-speed probe: the trainer's block timed in a fresh single-threaded process."""

from __future__ import annotations

import sys

import pytest

from fugaku_sim.calibrate import probe


def test_the_probe_times_the_trainers_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The median of at least three timed passes of the trainer's block_forward at the
    probe's shape, after one untimed pass."""
    from fugaku_sim.train import model as M

    shapes = []
    real = M.block_forward

    def counted(params, spec, layer, x, share):  # type: ignore[no-untyped-def]
        shapes.append((spec.hidden, spec.seq_len, x.shape))
        return real(params, spec, layer, x, share)

    monkeypatch.setattr(M, "block_forward", counted)
    seconds = probe.probe_seconds(budget_s=0.0)
    layers, c, heads, t, v, b = probe.PROBE_BLOCK
    assert len(shapes) == 4 and set(shapes) == {(c, t, (b, t, c))}
    assert 0 < seconds < 5


def test_run_probe_reports_a_figure_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = probe.run_probe()
    assert seconds is not None and 0 < seconds < 5
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert probe.run_probe() is None  # a probe never stops a calibration or a validation


@pytest.mark.parametrize(("calibrated", "now", "speed"), [
    (0.02, 0.01, 2.0), (0.01, 0.02, 0.5), (None, 0.01, None), (0.01, 0.0, None),
    ("0.01", 0.01, None)])
def test_machine_speed(calibrated: object, now: object, speed: float | None) -> None:
    assert probe.machine_speed(calibrated, now) == speed
