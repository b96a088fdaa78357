"""One layout from the workflow config to the trainer's command line and to the prediction.

The main Snakefile is dry-run with ci.yaml (plus a fixed layout); the shell commands it would
run for the layout rules and the prediction are then run for real, in order, and the train
rule's ``fugaku-sim train`` arguments go through the real parser to the specs the trainer
would run. A fixed layout's job shape and processes per node must arrive in both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, run_main, workflow_env

from fugaku_sim.cli import build_parser
from fugaku_sim.commands.common import resolve_specs
from fugaku_sim.spec import Layout
from fugaku_sim.train.run_plan import check_layout
from tests.shell import cli_invocations, launched_ranks

# A layout the plan would not choose: its own job shape (the shape choice takes 2x3x4 for these
# 24 nodes) and two processes per node on Fugaku (whose profile runs one).
FIXED = {"tp": 2, "pp": 2, "dp": 12, "processes_per_node": 2, "job_shape": [4, 3, 2]}
CONFIGS_BY_CASE = {
    "fixed": {"train": {"cluster": "fugaku", "ranks": 48, "layout": FIXED,
                        "settings": {"global_batch": 24}}},
    "auto": {},  # ci.yaml as it is: the plan picks the layout of 2 ranks on this machine
}
# the rules between the config and the trainer, in the order they run
LAYOUT_RULES = ("train_settings", "train_layout_fixed", "plan_train", "train_layout",
                "predict_train")


def shell_commands(dry_run_output: str) -> dict[str, str]:
    """Rule name -> the shell command of a ``snakemake -n -p`` run."""
    commands, rule = {}, None
    for line in dry_run_output.splitlines():
        head = line.split()
        if head and head[0] in ("rule", "localrule"):
            rule = head[1].rstrip(":")
        elif line.startswith("Shell command: ") and rule is not None:
            commands[rule] = line.removeprefix("Shell command: ")
    return commands


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CONFIGS_BY_CASE))
def test_layout_reaches_train_and_predict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          case: str) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(CONFIGS_BY_CASE[case]))
    work = tmp_path / "work"
    work.mkdir()
    run = run_main(work, "-n", "-p", "--cores", "2", "--configfile", str(CONFIGS / "ci.yaml"),
                   str(extra), timeout_s=120)
    assert run.returncode == 0, run.output[-3000:]
    commands = shell_commands(run.output)
    for name in ("logs/plan", "results/plan"):
        (work / name).mkdir(parents=True)
    for rule in LAYOUT_RULES:
        if rule in commands:
            done = subprocess.run(["bash", "-c", commands[rule]], cwd=work, env=workflow_env(),
                                  capture_output=True, text=True)
            log = "".join(p.read_text() for p in (work / "logs/plan").glob("*.log"))
            assert done.returncode == 0, (rule, done.stderr, log[-2000:])

    prediction = json.loads((work / "results/plan/train_prediction.json").read_text())
    if case == "fixed":
        expected = Layout.model_validate(FIXED)
        assert prediction["nodes"] == 24 and prediction["job_shape"] == "4x3x2"
        # the prediction's record also names the allocation it resolved for that shape
        predicted = expected.model_copy(update={"allocation": "torus"})
    else:
        best = json.loads((work / "results/plan/train_plan.json").read_text())["plans"][0]
        expected = predicted = Layout.model_validate(best["layout"])
        assert prediction["step_time_s"] == best["step_time_s"]  # the plan's own prediction
    assert Layout.model_validate(prediction["layout"]) == predicted

    train_argv = [argv for argv in cli_invocations(commands["train"]) if argv[0] == "train"]
    assert len(train_argv) == 1
    args = build_parser().parse_args(train_argv[0])
    monkeypatch.chdir(work)  # the rule's paths are relative to the workflow's directory
    model, train, layout = resolve_specs(args)
    assert layout == expected
    assert train.model_dump(mode="json") == prediction["train"]
    check_layout(model, train, layout, launched_ranks(commands["train"]))
