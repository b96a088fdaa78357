"""Emitted job scripts: every ``fugaku-sim`` command goes through the real argument parser and
resolves to the layout and training settings the prediction priced."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fugaku_sim.cli import build_parser
from fugaku_sim.commands.common import resolve_specs
from fugaku_sim.errors import SpecError
from fugaku_sim.spec import Layout, TrainSpec, load_model_preset
from fugaku_sim.spec.job import check_modelled
from fugaku_sim.spec.record import read_layout_record
from fugaku_sim.train.run_plan import check_layout, total_steps
from tests.shell import cli_invocations, launched_ranks

# (cluster, model, nodes, global batch, script): a PJM torus, a small PJM job (noncont), a
# Slurm GPU cluster, one machine
PLANS = [
    ("fugaku", "gpt2-small", "12", "24", "job.pjm.sh"),
    ("fugaku", "gpt2-small", "4", "16", "job.pjm.sh"),
    ("dgx-a100", "gpt2-xl", "2", "64", "job.sbatch.sh"),
    ("local", "gpt-micro", "1", "8", "job.local.sh"),
]


def runs_in_trainer(model: str, row: dict[str, Any]) -> bool:
    try:
        check_modelled(load_model_preset(model).model, TrainSpec(**row["train"]),
                       Layout(**row["layout"]), "train")
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(("cluster", "model", "nodes", "batch", "name"), PLANS,
                         ids=["fugaku", "fugaku-small", "dgx-a100", "local"])
def test_every_command_of_an_emitted_script_parses_and_runs_the_plan(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    cluster: str, model: str, nodes: str, batch: str, name: str,
) -> None:
    job = tmp_path / "job"
    status, out, err = run_cli("plan", "--cluster", cluster, "--model", model, "--nodes", nodes,
                               "--global-batch", batch, "--tokens", "1e9", "--json",
                               "--emit-job", str(job))
    assert status == 0, err
    rows = json.loads(out)["plans"]
    best = next(r for r in rows if runs_in_trainer(model, r))  # the plan may rank others first
    script = (job / name).read_text()
    commands = cli_invocations(script)
    assert [c[0] for c in commands] == ["train"], script
    assert re.search(r'(elapse=|--time=)\d{2,}:\d{2}:\d{2}\b', script) or cluster == "local"
    monkeypatch.chdir(job)  # the script runs in its own folder (its rank map is relative)
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)  # exits 2 on an option the verb does not have
        model_spec, train, layout = resolve_specs(args)
        assert {"layout": layout.model_dump(mode="json"),
                "train": train.model_dump(mode="json")} == {k: best[k] for k in ("layout", "train")}
        assert model_spec.name == model
        check_layout(model_spec, train, layout, launched_ranks(script))
        assert total_steps(model_spec, train) == best["steps"]  # the run's length is known
    assert read_layout_record(job / "layout.json", "layout.json").to_json() == {
        k: best[k] for k in ("layout", "train")}
