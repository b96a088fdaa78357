"""Shared job options: the layout record through --layout-from, the layers of settings, and
option choices taken from the spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from fugaku_sim.cli import build_parser
from fugaku_sim.commands.common import resolve_specs
from fugaku_sim.parallel.groups import RANK_ORDERS
from fugaku_sim.parallel.placement import Strategy
from fugaku_sim.parallel.schedule import ScheduleKind
from fugaku_sim.spec.figures import run_steps
from fugaku_sim.spec.train import OptimizerKind, RecomputeMode, TrainPrecision, ZeroStage
from fugaku_sim.train.run_plan import total_steps

# (cluster, options): a preset layout with its job shape on the torus, a small scattered job
# (64 nodes, noncont, 4 processes per node), a one-axis torus job (512 nodes in a padded
# block), a GPU cluster, and two ranks on one machine
JOBS = [
    ("fugaku", ["--model", "fugaku-llm-13b"]),
    ("fugaku", ["--model", "gpt2-small", "--tp", "4", "--dp", "64", "--processes-per-node", "4",
                "--global-batch", "1024"]),
    ("fugaku", ["--model", "gpt2-small", "--dp", "512", "--global-batch", "512"]),
    ("dgx-a100", ["--model", "gpt2-xl", "--tp", "1", "--pp", "4", "--dp", "4",
                  "--global-batch", "64", "--recompute", "all"]),
    ("local-calibrated", ["--model", "gpt-tiny", "--tp", "2", "--processes-per-node", "2",
                          "--micro-batch", "2", "--steps", "7"]),
]


def _predict(run_cli, *argv: str) -> dict:
    """predict --json's object without its meta block (which names the arguments)."""
    status, out, err = run_cli("predict", *argv, "--json")
    assert status == 0, err
    fields = json.loads(out)
    assert fields.pop("meta")["inputs"]["layout_record"]["layout"] == fields["layout"]
    return fields


@pytest.mark.parametrize(("cluster", "options"), JOBS,
                         ids=["fugaku-llm", "noncont", "one-axis", "dgx", "local"])
def test_a_prediction_read_back_predicts_the_same_run(run_cli, tmp_path: Path, cluster: str,
                                                      options: list[str]) -> None:
    first = _predict(run_cli, "--cluster", cluster, *options)
    assert first["layout"]["job_shape"] == [int(e) for e in first["job_shape"].split("x")]
    kind = first["allocation"]
    assert first["layout"]["allocation"] == (None if kind == "switched" else kind)
    assert first["layout"]["processes_per_node"] * first["nodes"] == (
        first["tp"] * first["pp"] * first["dp"])
    path = tmp_path / "prediction.json"
    path.write_text(json.dumps(first))
    model = options[options.index("--model") + 1]
    again = _predict(run_cli, "--cluster", cluster, "--model", model, "--layout-from", str(path))
    assert again == first


def test_the_best_entry_of_a_plan_and_options_over_the_record(run_cli, tmp_path: Path) -> None:
    status, out, err = run_cli("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes",
                               "24", "--global-batch", "48", "--json")
    assert status == 0, err
    plan = json.loads(out)["plans"]
    path = tmp_path / "plan.json"
    path.write_text(out)
    base = ["--cluster", "fugaku", "--model", "gpt2-small", "--layout-from", str(path)]
    best = _predict(run_cli, *base)
    assert {k: best[k] for k in ("layout", "train", "step_time_s")} == {
        k: plan[0][k] for k in ("layout", "train", "step_time_s")}
    # a single option overrides one field of the record; new degrees drop its job shape
    assert _predict(run_cli, *base, "--micro-batch", "1")["train"]["micro_batch"] == 1
    half = _predict(run_cli, *base, "--dp", str(best["dp"] // 2))
    assert half["nodes"] == best["nodes"] // 2
    assert half["layout"]["job_shape"] != best["layout"]["job_shape"]


def _resolve(*argv: str):
    return resolve_specs(build_parser().parse_args(["train", *argv]))


def test_steps_or_tokens_from_the_latest_layer_and_both_engines_agree(tmp_path: Path) -> None:
    # gpt-tiny's preset trains 300 steps; asking for tokens replaces them (and back)
    model, train, _ = _resolve("--model", "gpt-tiny", "--tokens", "1e5")
    assert (train.steps, train.tokens) == (None, 1e5)
    assert total_steps(model, train) == run_steps(train, model) == 49  # 1e5 / (16 x 128)
    config = tmp_path / "train.yaml"
    config.write_text("tokens: 2.0e+5\n")
    model, train, _ = _resolve("--model", "gpt-tiny", "--train-config", str(config))
    assert (train.steps, train.tokens) == (None, 2e5)
    model, train, _ = _resolve("--model", "gpt-tiny", "--train-config", str(config), "--steps", "3")
    assert (train.steps, train.tokens) == (3, None)


def test_check_reports_the_steps_the_trainer_runs(run_cli) -> None:
    argv = ["--model", "fugaku-llm-13b", "--steps", "10"]
    status, out, err = run_cli("check", "--cluster", "fugaku", *argv, "--json")
    assert status == 0, err
    model, train, _ = _resolve(*argv)
    assert json.loads(out)["steps"] == total_steps(model, train) == 10


@pytest.mark.parametrize(("option", "literal"), [
    ("--precision", TrainPrecision), ("--optimizer", OptimizerKind), ("--zero", ZeroStage),
    ("--recompute", RecomputeMode), ("--schedule", ScheduleKind), ("--placement", Strategy),
])
def test_option_choices_are_the_spec_literals(option: str, literal: object) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    for verb in ("check", "predict", "train"):
        action = next(a for a in sub.choices[verb]._actions if option in a.option_strings)
        assert tuple(action.choices) == get_args(literal), (verb, option)
    rank_order = next(a for a in sub.choices["train"]._actions if a.dest == "rank_order")
    assert tuple(rank_order.choices) == RANK_ORDERS
