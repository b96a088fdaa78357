"""The workflow config schema is generated from the pydantic models and must not drift."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from fugaku_sim.errors import SpecError
from fugaku_sim.workflow.config import SCHEMA_PATH, load_workflow_config, workflow_schema


def test_schema_file_matches_models() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == workflow_schema(), (
        "workflows/config/schema.json is stale: run "
        "`python -m fugaku_sim.workflow.config --write-schema`"
    )


@pytest.mark.parametrize("name", ["default.yaml", "ci.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    path = SCHEMA_PATH.parent / name
    data = yaml.safe_load(path.read_text()) or {}
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    load_workflow_config(data, str(path))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"ranks": 4, "layout": {"tp": 2}}}, "train.layout: tp x pp x dp = 2"),
        ({"train": {"settings": {"global_batch": -1}}}, "train.settings.global_batch"),
        ({"data": {"mixture": {"ja": 0.9}}}, "data.mixture"),
        ({"run_name": "a b"}, "run_name"),
        ({"plan": {"whatif_scale": {"gemm": 6}}}, "plan.whatif_scale.gemm: not a stack parameter"),
        ({"plan": {"whatif_scale": {"gemm_efficiency_scale": 0}}}, "must be positive"),
        ({"compare": {"profile": "elsewhere"}}, "compare.profile"),
        ({"compare": {"stack_free": "gemm"}}, "compare.stack_free: 'gemm' is not a stack"),
    ],
)
def test_bad_configs_name_the_field(data: dict, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace(".", r"\.")):
        load_workflow_config(data)


def test_defaults_plan_on_the_fitted_stack_and_compare_on_this_build() -> None:
    cfg = load_workflow_config({})
    assert cfg.plan.stack == "deepspeedfugaku-2023" and cfg.train.stack == "ideal"
    assert cfg.compare.profile == "measured"
    assert cfg.plan.whatif_options() == (
        "--stack-scale gemm_efficiency_scale=6 --stack-scale collective_efficiency.allreduce=3 "
        "--stack-scale collective_efficiency.p2p=3")
