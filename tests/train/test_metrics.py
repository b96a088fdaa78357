"""metrics.jsonl: read back strictly for plots, leniently on resume (a cut-short last line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.train.metrics import MetricsLog, TrainProgress, read_metrics


def write_log(path: Path, steps: int, tail: str = "") -> None:
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n"
                            for s in range(1, steps + 1)) + tail)


def test_resume_keeps_the_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    write_log(path, 5, tail='{"step": 6, "lo')  # killed while writing step 6
    with pytest.raises(UserError, match=r"metrics.jsonl:6: not a JSON object"):
        read_metrics(path)
    log = MetricsLog(path, resume_step=3)
    log.write({"step": 4, "loss": 0.5})
    log.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4]


def test_a_file_of_other_records_is_not_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"text": "a document"}\n')
    with pytest.raises(UserError, match="without an integer 'step'"):
        read_metrics(path)
    assert read_metrics(path, skip_bad=True) == []


def step_record(step: int, **extra: float) -> dict:
    return {"step": step, "loss": 7.0 - step, "lr": 1e-3, "grad_norm": 0.81, "tokens": 64,
            "tokens_per_s": 10520.3, "step_time_s": 0.195, **extra}


def test_training_logs_a_megatron_style_line_per_step(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "lines")  # what a batch job's log gets
    bar = TrainProgress(total=3, start=0, enabled=True)
    for step in (1, 2, 3):
        bar.update(step_record(step, **({"val_loss": 4.5} if step == 3 else {})))
    bar.close()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "train: iteration 1/3 | elapsed time per iteration (ms): 195.0 | learning rate: "
        "1.000E-03 | lm loss: 6.000000E+00 | grad norm: 0.810 | tokens per second: 10,520 | "
        "elapsed 0:00:00")
    assert "ETA" in lines[1] and "validation loss: 4.500000E+00" in lines[2]
    # the line is the one the Megatron log importer reads (iteration and time per iteration)
    from fugaku_sim.calibrate.megatron_log import _ITERATION

    match = _ITERATION.search(lines[0])
    assert match and match.groups() == ("1", "195.0")


def test_log_interval_and_a_resumed_run(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "lines")
    bar = TrainProgress(total=9, start=4, enabled=True, every_n=2)
    for step in range(5, 10):
        bar.update(step_record(step))
    bar.close()
    heads = [line.split(" | ")[0] for line in capsys.readouterr().err.splitlines()]
    assert heads == ["train: iteration 4/9", "train: iteration 6/9", "train: iteration 8/9",
                     "train: iteration 9/9"]
    TrainProgress(total=9, start=0, enabled=False).update(step_record(1))
    assert capsys.readouterr().err == ""
