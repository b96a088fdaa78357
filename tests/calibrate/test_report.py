"""compare.md and compare.png say what the predictions were made on (the profile, its sha256,
when and where it was measured) and warn when that was another machine; the log axes'
labels are plain numbers that do not overlap."""

from __future__ import annotations

import json
from pathlib import Path

from fugaku_sim.calibrate.compare import BREAKDOWN_KEYS, Row, summarize_rows
from fugaku_sim.calibrate.report import _log_ticks, profile_lines, profile_name, write_outputs

MEASURED = {"name": "local-calibrated", "file": "clusters/local-calibrated.yaml",
            "sha256": "fd1260673fe42d4844c0fcc6b85be71e33c1ca71b3562fa93dbe3372766906ab",
            "measured_utc": "2026-11-29T14:14:05+00:00", "measured_on": "vm (AMD EPYC, 2 cores)"}
HERE = {"host": "ci", "cpu_model": "Intel(R) Xeon(R) Processor", "cores": 2,
        "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [1.5, 1.0, 1.0]}


def row(measured: float, predicted: float) -> Row:
    zero = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    return Row(label=f"run {measured}", model="gpt-micro", ranks=2, tp=1, pp=1, dp=2,
               micro_batch=1, global_batch=8, measured_step_s=measured,
               predicted_step_s=predicted, measured_breakdown_s=zero,
               predicted_breakdown_s=zero, steps_timed=3, measured_spread=0.0, source="")


def test_the_report_names_the_profile_and_warns_of_another_machine(tmp_path: Path) -> None:
    meta = {"cluster": MEASURED, **HERE}
    rows = [row(0.0506, 0.0056)]
    write_outputs(rows, summarize_rows(rows), meta, tmp_path)
    text = (tmp_path / "compare.md").read_text()
    assert ("Predicted on cluster profile `local-calibrated` "
            "(`clusters/local-calibrated.yaml`, sha256 `fd1260673fe4`), measured "
            "2026-11-29T14:14:05+00:00 on vm (AMD EPYC, 2 cores).") in text
    assert "**The profile was measured on another machine (vm (AMD EPYC, 2 cores)) than these " \
           "runs (ci (Intel(R) Xeon(R) Processor, 2 cores))" in text
    assert json.loads((tmp_path / "compare.json").read_text())["meta"]["cluster"] == MEASURED
    assert profile_name(meta).startswith(
        "profile local-calibrated, measured 2026-11-29 on vm (AMD EPYC, 2 cores); runs on ci")


def test_same_machine_and_datasheet_profiles() -> None:
    same = {"cluster": {**MEASURED, "measured_on": "ci (Intel(R) Xeon(R) Processor, 2 cores)"},
            **HERE}
    assert not any("another machine" in line for line in profile_lines(same))
    sheet = {"cluster": {**MEASURED, "name": "fugaku", "measured_utc": None,
                         "measured_on": None}, **HERE}
    assert "not measured (datasheet or assumed figures)" in profile_lines(sheet)[0]
    stack = {**same, "stack": {"name": "ideal", "file": None, "sha256": None}}
    assert profile_lines(stack)[1] == ("Predicted on software stack `ideal` (no file), not "
                                       "measured (datasheet or assumed figures).")


def test_log_axis_labels_are_plain_numbers_at_one_two_five() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set(xscale="log", xlim=(3.9, 70))
    _log_ticks(ax.xaxis)
    fig.canvas.draw()
    shown = [t.get_text() for loc, t in zip(ax.get_xticks(), ax.get_xticklabels())
             if 3.9 <= loc <= 70]
    assert shown == ["5", "10", "20", "50"]
    assert not any(t.get_text() for t in ax.get_xticklabels(minor=True))  # minor ticks bare
    plt.close(fig)
