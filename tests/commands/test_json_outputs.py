"""Every ``--json`` output is one JSON object on stdout, with the ``meta`` block.

The verbs are found in the command-line parser, so a verb that gains ``--json`` is run here
without being listed: it runs with the arguments of :data:`ARGUMENTS` (its required ones) or
none (the presets' defaults).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fugaku_sim import __version__
from fugaku_sim.checksum import sha256_file
from fugaku_sim.cli import build_parser
from fugaku_sim.meta import REPO_ROOT
from fugaku_sim.spec import load_model_preset

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = "RUN_DIR"  # replaced by a finished training run's folder
OUT_DIR = "OUT_DIR"  # replaced by a temporary folder

#: arguments a verb needs beyond its defaults (kept small: each verb runs in seconds)
ARGUMENTS: dict[tuple[str, ...], list[str]] = {
    ("plan",): ["--cluster", "fugaku", "--model", "gpt2-small", "--nodes", "12",
                "--global-batch", "24", "--top", "2"],
    ("sweep",): ["--cluster", "fugaku", "--model", "gpt2-small", "--global-batch", "24",
                 "--tp", "2", "--dp", "6", "--vary", "link_bw", "--values", "3.4", "6.8",
                 "--out", OUT_DIR],
    ("campaign",): ["--seeds", "20"],
    ("validate",): ["--cluster", "local-calibrated", "--from-metrics", RUN_DIR,
                    "--out", OUT_DIR],
    ("runs", "check"): [str(REPO / "clusters/runs/megatron-sc21.csv")],
    # --json is the stack fit's (without --from-runs it is refused: a calibration writes files)
    ("calibrate",): ["--from-runs", str(REPO / "clusters/runs/megatron-sc21.csv"),
                     "--cluster", "dgx-a100", "--out", OUT_DIR, "--free", "gemm_efficiency_scale",
                     "--fit-only", "sc21-table1-1.7b,sc21-table1-39.1b,sc21-table1-1008b"],
    ("sensitivity",): ["--cluster", "fugaku", "--model", "gpt2-small", "--tp", "4", "--pp", "1",
                       "--dp", "16", "--processes-per-node", "4", "--global-batch", "256",
                       "--top", "2"],
}


def json_commands(parser: argparse.ArgumentParser,
                  path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every (sub)command whose parser has a ``--json`` switch (an input option named
    ``--json``, as ``workflow write`` has, is not an output format)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += json_commands(sub, (*path, name))
        elif "--json" in action.option_strings and isinstance(action, argparse._StoreTrueAction):
            found.append(path)
    return found


COMMANDS = json_commands(build_parser())


def test_the_verbs_with_json_are_found() -> None:
    assert {("check",), ("predict",), ("plan",), ("sweep",), ("campaign",), ("validate",),
            ("runs", "check")} <= set(COMMANDS)
    assert ("workflow", "write") not in COMMANDS


def finished_run(folder: Path) -> Path:
    """A trainer's output folder as validate reads it (summary.json and metrics.jsonl)."""
    preset = load_model_preset("gpt-micro")
    summary = {"model": preset.model.model_dump(mode="json"),
               "train": {"global_batch": 8, "micro_batch": 2},
               "layout": {"tp": 1, "pp": 1, "dp": 2}, "step_time_s_mean": 0.05}
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = [{"step": i + 1, "step_time_s": 0.05, "breakdown_s": {"compute": 0.05}}
             for i in range(5)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_json_output_is_one_object_with_meta(command: tuple[str, ...], run_cli,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "lines")  # progress on, as in a batch log
    extra = [str(finished_run(tmp_path / "run")) if a == RUN_DIR else
             str(tmp_path / "out") if a == OUT_DIR else a
             for a in ARGUMENTS.get(command, [])]
    status, out, err = run_cli(*command, *extra, "--json")
    assert status == 0, err
    doc = json.loads(out)  # stdout is the JSON and nothing else
    assert isinstance(doc, dict)
    meta = doc["meta"]
    assert meta["tool"] == "fugaku-sim" and meta["version"] == __version__
    assert "git_commit" in meta and "git_dirty" in meta
    assert isinstance(meta["inputs"]["arguments"], dict) and meta["inputs"]["arguments"]["json"]
    for kind in ("cluster", "model", "stack"):  # each spec file the options name
        ref = meta["inputs"]["arguments"].get(kind)
        if ref is None:
            continue
        spec = meta[kind]
        assert spec["name"] == ref and len(spec["sha256"]) == 64
        file = Path(spec["file"])
        assert sha256_file(file if file.is_absolute() else REPO_ROOT / file) == spec["sha256"]


def test_a_cluster_profile_says_when_it_was_measured(run_cli) -> None:
    status, out, err = run_cli("check", "--cluster", "local-calibrated", "--model", "gpt-micro",
                               "--tp", "1", "--pp", "1", "--dp", "2", "--global-batch", "8",
                               "--json")
    assert status == 0, err
    meta = json.loads(out)["meta"]
    sidecar = json.loads((REPO / "clusters/local-calibrated.measurements.json").read_text())
    assert meta["cluster"]["file"] == "clusters/local-calibrated.yaml"
    assert meta["cluster"]["measured_utc"] == sidecar["provenance"]["date_utc"]
    assert meta["cluster"]["measured_on"].startswith(sidecar["provenance"]["host"])
    assert meta["model"]["measured_utc"] is None  # a preset: nothing measured
    record = meta["inputs"]["layout_record"]
    assert record["layout"]["dp"] == 2 and record["train"]["global_batch"] == 8


def test_plan_json_lists_the_layouts_under_plans_and_readers_take_it(run_cli,
                                                                     tmp_path: Path) -> None:
    status, out, err = run_cli(*("plan", *ARGUMENTS[("plan",)]), "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert set(doc) == {"meta", "plans"} and len(doc["plans"]) == 2
    plan = tmp_path / "plan.json"
    plan.write_text(out)
    old = tmp_path / "old.json"  # a plan written before the meta block: a bare list
    old.write_text(json.dumps(doc["plans"]))
    for path in (plan, old):
        assert run_cli("workflow", "pick-layout", "--plan", str(path), "--out",
                       str(tmp_path / "layout.json"))[0] == 0
        picked = json.loads((tmp_path / "layout.json").read_text())
        assert picked["layout"] == doc["plans"][0]["layout"]
        assert run_cli("workflow", "plan-table", "--plan", str(path), "--out",
                       str(tmp_path / "plan.md"))[0] == 0
        assert (tmp_path / "plan.md").read_text().count("\n| ") == 3  # header + 2 layouts
