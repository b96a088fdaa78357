"""Emitted job chains: every ``fugaku-sim`` command of every script goes through the real
argument parser and resolves to what the prediction priced; the ``#PJM`` lines pass the pjsub
stand-in's checks; and a PJM chain runs end to end through the stand-ins: the first step job
trains its steps and writes a checkpoint, the second resumes from it and finishes the run."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from fugaku_sim.cli import build_parser
from fugaku_sim.commands.common import resolve_specs
from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.sim.campaign import CampaignPlan
from fugaku_sim.sim.campaign_costs import Interval
from fugaku_sim.sim.distributions import Fixed
from fugaku_sim.sim.jobchain import TRAIN_SHARE, campaign_chain, steps_per_job
from fugaku_sim.sim.montecarlo import run_campaigns
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset
from fugaku_sim.spec.campaign import CampaignSettings
from fugaku_sim.spec.job import check_modelled
from fugaku_sim.spec.record import read_layout_record
from fugaku_sim.train.run_plan import check_layout, total_steps
from tests.shell import cli_invocations, launched_ranks
from tests.train.helpers import write_data, write_model

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "workflows" / "standins"
VENV_BIN = Path(sys.executable).parent

# (cluster, model, nodes, global batch, script, user settings): a PJM torus job, a small PJM
# job (noncont), a Slurm GPU cluster, one machine
PLANS = [
    ("fugaku", "gpt2-small", "12", "24", "job.pjm.sh", ["--group", "hp000000",
                                                        "--llio", "localtmp-size=10Gi"]),
    ("fugaku", "gpt2-small", "4", "16", "job.pjm.sh", ["--llio-volumes", "/vol0004"]),
    ("dgx-a100", "gpt2-xl", "2", "64", "job.sbatch.sh", ["--account", "proj1"]),
    ("local", "gpt-micro", "1", "8", "job.local.sh", []),
]


def runs_in_trainer(model: str, row: dict[str, Any]) -> bool:
    try:
        check_modelled(load_model_preset(model).model, TrainSpec(**row["train"]),
                       Layout(**row["layout"]), "train")
    except SpecError:
        return False
    return True


def pjsub_standin() -> ModuleType:
    """The pjsub stand-in as a module (its directive checks)."""
    sys.path.insert(0, str(STANDINS))
    loader = importlib.machinery.SourceFileLoader("pjsub_standin", str(STANDINS / "pjsub"))
    spec = importlib.util.spec_from_loader("pjsub_standin", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def chain_jobs(script: str) -> int:
    return int(re.search(r"in (\d+) job\(s\)", script).group(1))  # type: ignore[union-attr]


@pytest.mark.parametrize(("cluster", "model", "nodes", "batch", "name", "user"), PLANS,
                         ids=["fugaku", "fugaku-small", "dgx-a100", "local"])
def test_every_command_of_an_emitted_chain_parses_and_runs_the_plan(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    cluster: str, model: str, nodes: str, batch: str, name: str, user: list[str],
) -> None:
    job = tmp_path / "job"
    status, out, err = run_cli("plan", "--cluster", cluster, "--model", model, "--nodes", nodes,
                               "--global-batch", batch, "--tokens", "1e9", "--json",
                               "--emit-job", str(job), "--elapse-h", "2", "--seeds", "20", *user)
    assert status == 0, err
    rows = json.loads(out)["plans"]
    best = next(r for r in rows if runs_in_trainer(model, r))  # the plan may rank others first
    script = (job / name).read_text()
    for path in job.glob("*.sh"):  # bash reads every script
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, path
    commands = cli_invocations(script)
    assert [c[0] for c in commands] == ["train"], script
    monkeypatch.chdir(job)  # the script runs in its own folder (its rank map is relative)
    parser = build_parser()
    args = parser.parse_args(commands[0])  # exits 2 on an option the verb does not have
    model_spec, train, layout = resolve_specs(args)
    assert {"layout": layout.model_dump(mode="json"),
            "train": train.model_dump(mode="json")} == {k: best[k] for k in ("layout", "train")}
    assert model_spec.name == model
    check_layout(model_spec, train, layout, launched_ranks(script))
    assert total_steps(model_spec, train) == best["steps"]  # the run's length is known
    assert (args.resume, args.out, args.data) == ("auto", Path("results/train"),
                                                  Path("results/data"))
    assert read_layout_record(job / "layout.json", "layout.json").to_json() == {
        k: best[k] for k in ("layout", "train")}
    if cluster == "local":
        assert args.steps_per_job is None and not (job / "submit.sh").exists()
        return
    jobs = chain_jobs(script)
    assert jobs >= -(-best["steps"] // args.steps_per_job)  # enough jobs for every step
    submit = (job / "submit.sh").read_text()
    assert f"seq {'1' if name == 'job.pjm.sh' else '2'} {jobs - (name == 'job.pjm.sh')}" in submit
    if name == "job.sbatch.sh":
        assert "#SBATCH --time=02:00:00" in script and "#SBATCH --account=proj1" in script
        assert "--dependency=afterany:" in submit
        return
    pjsub = pjsub_standin()
    raw, lists = pjsub.pjmstate.parse_directives(script)
    assert pjsub.check(lists) is None, raw
    pairs = [tuple(p) for p in lists]
    assert ("-L", "elapse=02:00:00") in pairs and ("-L", "freq=2200") in pairs
    assert ("-L", "eco_state=0") in pairs
    assert ("--mpi", f"max-proc-per-node={best['layout']['processes_per_node']}") in pairs
    assert [(o, v) for o, v in pairs if o == "-g"] == ([("-g", "hp000000")] if "--group" in user
                                                        else [])
    assert '--step --sparam "sn=0" job.pjm.sh' in submit and "sd=ec==2:all:" in submit


def test_chain_length_from_the_campaign() -> None:
    """Steps per job: 90% of the time after start-up and restore, at the step with its share
    of the checkpoint writes; jobs: enough for the steps, or the campaign's p90 if more."""
    plan = CampaignPlan(steps=1000, step=Fixed(10.0), nodes=4, dp=2, checkpoint_every=50,
                        write_s=5.0, startup_s=60.0, elapse_s=3600.0)
    assert steps_per_job(plan) == int(((3600 - 60) * TRAIN_SHARE - 5) / (10 + 5 / 50)) == 314
    settings = CampaignSettings(checkpoint_every=50, eval_every=None)
    summary = run_campaigns(plan, 5)
    chain = campaign_chain(plan, Interval(50, "fixed"), settings, summary)
    # the campaign trains to the limit and loses what follows its last checkpoint: it needs
    # more jobs than the chain's clean stops
    assert chain.jobs == max(4, int(summary.quantiles("jobs")["p90"])) >= 4
    assert (chain.steps_per_job, chain.checkpoint_every, chain.elapse_s) == (314, 50, 3600.0)
    with pytest.raises(UserError, match="--elapse-h"):
        steps_per_job(CampaignPlan(steps=10, step=Fixed(10.0), nodes=1, dp=1, startup_s=100.0,
                                   elapse_s=110.0))


def test_emit_job_refuses_what_the_chain_cannot_run(run_cli, tmp_path: Path) -> None:
    base = ("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes", "12",
            "--global-batch", "24", "--tokens", "1e9", "--emit-job", str(tmp_path / "j"))
    status, _, err = run_cli(*base, "--elapse-h", "100")
    errors = [line for line in err.splitlines() if not line.startswith("plan: ")]  # progress
    assert status == 2 and len(errors) == 1
    assert "exceeds the 72-h limit of resource group small" in errors[0]
    status, _, err = run_cli(*base, "--spare-nodes", "1")
    assert status == 2 and "spare" in err
    assert not (tmp_path / "j").exists()


def pjm_test_cluster(path: Path) -> Path:
    """Fugaku with no start-up or queue wait, so a job of seconds can hold a few steps."""
    given = {"campaign.startup_s": 0.0, "campaign.queue_wait_h.p50_h": 0.0,
             "campaign.queue_wait_h.p90_h": 0.0}  # given here: no longer assumed
    data = load_cluster("fugaku").with_given(given).model_dump(mode="json")
    data["name"] = "fugaku-standin"
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for(root: Path, count: int, timeout_s: float = 240) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [json.loads(p.read_text()) for p in sorted((root / "jobs").glob("*.json"))]
        if len(jobs) == count and all(j["state"] in ("EXT", "CCL") for j in jobs):
            return sorted(jobs, key=lambda j: j["step"])
        assert time.monotonic() < deadline, jobs
        time.sleep(0.5)


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mpiexec", path=str(VENV_BIN)) is None, reason="no mpiexec")
def test_the_chain_runs_through_the_pjsub_standins(run_cli, tmp_path: Path) -> None:
    cluster = pjm_test_cluster(tmp_path / "cluster.yaml")
    model = write_model(tmp_path / "model.yaml")
    data = write_data(tmp_path / "data")
    job = tmp_path / "job"
    status, out, err = run_cli("plan", "--cluster", str(cluster), "--model", str(model),
                               "--nodes", "2", "--steps", "20", "--engine", "train", "--json")
    assert status == 0, err
    step_s = json.loads(out)["plans"][0]["step_time_s"]  # the layout the job script runs
    # an elapsed time that holds 10 of the predicted steps (written as the 1-minute minimum)
    elapse_h = 10.5 * step_s / TRAIN_SHARE / 3600
    status, _, err = run_cli("plan", "--cluster", str(cluster), "--model", str(model),
                             "--nodes", "2", "--steps", "20", "--emit-job", str(job),
                             "--elapse-h", f"{elapse_h:.12f}", "--checkpoint-every", "4",
                             "--eval-every", "none", "--group", "hp000000",
                             "--train-data", str(data), "--train-out", "run", "--seeds", "5")
    assert status == 0, err
    script = (job / "job.pjm.sh").read_text()
    # two jobs hold the steps; the campaign, which trains to the limit and loses the work
    # after its last checkpoint, may ask for more: those find the run complete
    jobs = chain_jobs(script)
    assert "--steps-per-job 10" in script and jobs >= 2
    env = {"PATH": f"{STANDINS / 'fjmpi'}:{STANDINS}:{VENV_BIN}:/usr/bin:/bin",
           "PJM_STANDIN_DIR": str(tmp_path / "pjm"), "OPENBLAS_NUM_THREADS": "1",
           "FJMPI_STANDIN_MPIEXEC": str(VENV_BIN / "mpiexec"), "HOME": str(tmp_path)}
    submit = subprocess.run([str(job / "submit.sh")], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    assert submit.returncode == 0, submit.stderr
    ended = wait_for(tmp_path / "pjm", jobs)
    first, second = ended[:2]
    logs = [(job / f"{j['name']}.{j['id']}.out").read_text() for j in ended]
    assert (first["state"], first["exit_code"]) == ("EXT", 0), logs[0]
    assert "stopped at step 10 of 20" in logs[0]  # the first job trained its steps ...
    assert "run/checkpoints/step_0000010" in logs[0]  # ... and saved them (later pruned)
    assert (second["state"], second["exit_code"]) == ("EXT", 0), logs[1]
    summary = json.loads((job / "run/summary.json").read_text())
    assert (summary["resumed_from_step"], summary["steps"]) == (10, 20)  # the second resumed
    steps = [json.loads(line)["step"] for line in (job / "run/metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 21))
    assert ("-g", "hp000000") in [tuple(p) for p in first["options"]]
    for later, log in zip(ended[2:], logs[2:]):
        assert later["exit_code"] == 0 and "the run is complete" in log
