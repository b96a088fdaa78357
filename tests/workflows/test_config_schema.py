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


@pytest.mark.hostile
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


@pytest.mark.hostile
@pytest.mark.parametrize(("data", "expected"), [
    ({"train": {"settings": {"global_batch": 7, "micro_batch": 2}}},
     "train.settings.global_batch: 7 is not a multiple of micro_batch (2)"),
    ({"train": {"ranks": 3, "layout": {"tp": 3}}},
     "train.layout.tp: 3 does not divide model.heads (4) (train.model gpt-tiny)"),
    ({"train": {"ranks": 4, "layout": {"dp": 4}, "settings": {"global_batch": 8, "micro_batch": 4}}},
     "train.settings.global_batch: 8 is not a multiple of train.micro_batch x layout.dp"),
    ({"data": {"tokenizer": {"vocab_size": 100000}}},
     "data.tokenizer.vocab_size: the tokenizer's vocabulary (100000) exceeds model.vocab (8192)"),
    ({"train": {"settings": {"precision": "bf16"}}}, "train.settings.precision: the numpy"),
    ({"train": {"settings": {"lr": 1e-9}}}, "train.settings.min_lr: 0.0002 is above lr"),
    ({"train": {"model": "gpt-nano"}}, "train.model: no model preset 'gpt-nano'"),
])
def test_cross_field_rules_are_checked_before_any_job(data: dict, expected: str) -> None:
    """What the training job would refuse after the data stage, refused at once."""
    from fugaku_sim.workflow.config import check_run

    with pytest.raises(SpecError) as info:
        check_run(load_workflow_config(data))
    assert expected in str(info.value), str(info.value)


def test_shipped_configs_pass_the_cross_field_rules() -> None:
    from fugaku_sim.workflow.config import check_run

    for name in ("default.yaml", "ci.yaml"):
        check_run(load_workflow_config(yaml.safe_load((SCHEMA_PATH.parent / name).read_text())
                                       or {}))


@pytest.mark.hostile
def test_an_alias_bomb_is_refused_before_the_schema_walks_it() -> None:
    from fugaku_sim.workflow.config import check_against_schema

    bomb = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                     + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)])
    data = yaml.safe_load(bomb)  # as Snakemake loads it: shared lists, 10^9 values expanded
    with pytest.raises(SpecError, match="expands to more than"):
        check_against_schema(data, "config")


def test_defaults_plan_on_the_fitted_stack_and_compare_on_this_build() -> None:
    cfg = load_workflow_config({})
    assert cfg.plan.stack == "deepspeedfugaku-2023" and cfg.train.stack == "ideal"
    assert cfg.compare.profile == "measured"
    assert cfg.plan.whatif_options() == (
        "--stack-scale gemm_efficiency_scale=6 --stack-scale collective_efficiency.allreduce=3 "
        "--stack-scale collective_efficiency.p2p=3")
