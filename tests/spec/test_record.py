"""The layout record: written by predict/plan, read back by --layout-from, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.spec import Layout, TrainSpec
from fugaku_sim.spec.record import LayoutRecord, parse_layout_record, read_layout_record

RECORD = LayoutRecord(Layout(tp=2, pp=2, dp=3, job_shape=[2, 3, 2], processes_per_node=1),
                      TrainSpec(global_batch=12, micro_batch=2, recompute="first-half", steps=5))


def test_round_trip_and_plan_lists(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(RECORD.to_json()))
    assert read_layout_record(path, "r.json") == RECORD
    other = LayoutRecord(Layout(tp=4))
    plan = [RECORD.to_json() | {"step_time_s": 1.0}, other.to_json()]
    assert parse_layout_record(plan, "plan") == RECORD  # the best (first) entry
    # plan --json's object: the layouts under "plans", beside its meta block
    assert parse_layout_record({"meta": {}, "plans": plan}, "plan") == RECORD
    assert parse_layout_record(other.to_json(), "fixed").train is None
    assert "train" not in other.to_json()


@pytest.mark.parametrize(("data", "message"), [
    ({"tp": 2, "pp": 1, "dp": 1}, "x.json: no 'layout' object; write one with"),
    ([], "x.json: an empty plan"),
    ({"meta": {}, "plans": []}, "x.json: an empty plan"),
    ("tp=2", "x.json: expected a JSON object with a 'layout' object, found str"),
    ({"layout": {"tp": 0}}, "x.json: layout.tp: Input should be greater than 0"),
    ({"layout": {"tp": 1, "shape": [1]}}, "x.json: layout.shape: unknown key"),
    ({"layout": {}, "train": {"micro_batch": 2}}, "x.json: train.global_batch: missing"),
], ids=["flat-keys", "empty-plan", "empty-plans", "not-an-object", "bad-field", "unknown-key", "bad-train"])
def test_bad_records_are_one_line_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(UserError) as err:
        parse_layout_record(data, "x.json")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_files_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--layout-from nope.json: no such file"):
        read_layout_record(tmp_path / "nope.json", "--layout-from nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UserError, match="bad.json: not valid JSON"):
        read_layout_record(bad, "bad.json")
