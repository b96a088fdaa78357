"""metrics.jsonl: read back strictly for plots, leniently on resume (a cut-short last line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.train.metrics import MetricsLog, read_metrics


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
