"""The main workflow (the top-level Snakefile) as its users run it.

Dry runs (Python API and every profile), lint, config errors that stop it before any job,
the ci.yaml build end to end locally (contract outputs, the report), a killed training run
that resumes, and the same build through the fugaku profile (PJM stand-ins) and a real Slurm.
Every run works in a temporary directory (`snakemake -d`), never in the repository.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import (
    CONFIGS,
    MAIN,
    NO_SLURM,
    STANDINS,
    Run,
    main_command,
    run_main,
    workflow_env,
)
from test_fugaku_profile import FAST_POLLING, options, pjm_env, recorded_jobs
from test_slurm_profile import slurm_answers

CI = CONFIGS / "ci.yaml"
RUN_NAME = yaml.safe_load(CI.read_text())["run_name"]
CONTRACT = [
    "results/data/manifest.json",
    "results/train/metrics.jsonl",
    "results/eval/eval.json",
    f"results/release/{RUN_NAME}/SHA256SUMS",
    "results/plan/plan.json",
    "results/compare/run/compare.json",
]
# Rules of `all`; the ones in the Snakefile's `localrules` run beside Snakemake, not as jobs.
LOCAL_RULES = {"data_config", "plan_table", "plan_campaign", "predict_reference",
               "sensitivity_reference", "train_settings", "train_layout",
               "loss_plot", "release_verify"}
BATCH_RULES = {"data_collect", "data_clean", "data_dedup", "data_tokenizer", "data_tokenize",
               "data_mix", "plan_reference", "plan_train", "predict_train", "train", "evaluate",
               "compare_run", "release", "calibrate"}  # ci compares on its own calibration
CI_JOBS = len(LOCAL_RULES | BATCH_RULES) + 1  # + all
# The slurm and fugaku profiles group the data stages and the post-training rules: the batch
# jobs of a cluster build, by rule or group name.
CLUSTER_JOBS = {"data", "plan_reference", "plan_train", "predict_train", "train", "post",
                "calibrate"}


def assert_ci_outputs(workdir: Path) -> None:
    """The contract outputs exist, every rule wrote its log and the model learnt."""
    for path in CONTRACT:
        assert (workdir / path).is_file(), path
    json.loads((workdir / "results/data/manifest.json").read_text())
    sums = (workdir / CONTRACT[3]).read_text().splitlines()
    assert any(line.endswith("model.safetensors") for line in sums)
    logs = {p.stem for p in (workdir / "logs").rglob("*.log")}
    assert len(logs) >= len(LOCAL_RULES | BATCH_RULES), sorted(logs)
    assert final_val_loss(workdir) < math.log(vocabulary(workdir))


def metrics(workdir: Path) -> list[dict]:
    text = (workdir / "results/train/metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def final_val_loss(workdir: Path) -> float:
    return [r["val_loss"] for r in metrics(workdir) if "val_loss" in r][-1]


def vocabulary(workdir: Path) -> int:
    return int(json.loads((workdir / "results/train/summary.json").read_text())["model"]["vocab"])


def dry_run_jobs(output: str) -> int:
    """The job count of a dry run's "Job stats" table."""
    for line in output.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "total":
            return int(words[1])
    raise AssertionError(f"no job count in: {output[-2000:]}")


# --- dry runs and lint ----------------------------------------------------------------------


@pytest.mark.parametrize("configfiles", [[], [CI], [CONFIGS / "llama.yaml"]],
                         ids=["default", "ci", "llama"])
def test_dry_run_and_lint_through_python_api(tmp_path: Path, configfiles: list[Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    monkeypatch.chdir(tmp_path)  # Snakemake changes into the working directory
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=configfiles),
            storage_settings=StorageSettings(),
            snakefile=MAIN,
            workdir=tmp_path,
        )
        assert workflow.lint() is False  # False: no lints found
        workflow.dag(DAGSettings()).execute_workflow(executor="dryrun")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("profile", ["local", "slurm", "fugaku"])
@pytest.mark.parametrize("configfiles", [[], [CI]], ids=["default", "ci"])
def test_dry_run_under_every_profile(tmp_path: Path, profile: str,
                                     configfiles: list[Path]) -> None:
    # The API does not read profiles: these go through the command line. The stand-ins on PATH
    # make the fugaku profile's scripts resolvable, though a dry run calls none of them.
    config = ["--configfile", *map(str, configfiles)] if configfiles else []
    run = run_main(tmp_path, "-n", "--cores", "2", *config, profile=profile,
                   env={"PATH": f"{STANDINS}:/usr/bin:/bin"}, timeout_s=90)
    assert run.returncode == 0, run.output[-3000:]
    assert dry_run_jobs(run.output) == CI_JOBS
    # the train rule launches its ranks with the profile's launcher, resolved
    launcher = "srun --mpi=pmi2" if profile == "slurm" else f"{Path(sys.executable).parent}/mpiexec"
    assert f"{launcher} -n 2 " in run.output
    assert not (tmp_path / "results").exists()


def test_lint_is_clean_on_the_command_line(tmp_path: Path) -> None:
    run = run_main(tmp_path, "--lint", "--configfile", str(CI), timeout_s=90)
    assert run.returncode == 0, run.output[-3000:]
    assert "Lints for" not in run.output and "Congratulations" in run.output


# --- config errors --------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("trian: {}\n", "trian: unknown key (misspelt?)"),
        ("train: {settings: {stpes: 10}}\n", "train.settings.stpes: unknown key (misspelt?)"),
        ("train: {ranks: 3, layout: {tp: 1, pp: 1, dp: 2}}\n",
         "train.layout: tp x pp x dp = 2 but train.ranks is 3"),
        ("data: {mixture: {ja: 0.9}}\n", "data.mixture: ja + en + code + maths must be 1"),
        ("train: {ranks: 0}\n", "train.ranks:"),
        ("train: {model: gpt-nano}\n", "train.model: no model preset 'gpt-nano'"),
        ("train: {settings: {global_batch: 7, micro_batch: 2}}\n",
         "train.settings.global_batch: 7 is not a multiple of micro_batch (2)"),
        ("data: {tokenizer: {vocab_size: 100000}}\n",
         "data.tokenizer.vocab_size: the tokenizer's vocabulary (100000) exceeds model.vocab"),
        ("train: {ranks: 2}\nrun_name: a\ntrain: {ranks: 4}\n",
         "YAML syntax error: duplicate key 'train' at line 3"),
    ],
    ids=["misspelt-key", "misspelt-nested-key", "ranks-vs-layout", "mixture-sum",
         "ranks-zero", "unknown-model", "batch-not-dividing", "tokenizer-too-large",
         "duplicate-key"],
)
def test_config_error_stops_before_any_job_in_one_line(tmp_path: Path, config: str,
                                                       message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(config)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        main_command(work, "--cores", "2", "--configfile", str(CI), str(bad), timeout_s=90),
        cwd=work, env=workflow_env(NO_SLURM), capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    # Snakemake's own note that the command line extends default.yaml comes first
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith("Config file ") or "is extended by" not in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fugaku-sim workflow: config error: ") and message in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (work / "results").exists() and not (work / "logs").exists()


# --- the ci build, locally ------------------------------------------------------------------


@dataclass
class Build:
    workdir: Path
    run: Run


def local_build(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Build:
    """The workflow on ``config`` end to end with the local profile, in a fresh folder."""
    work = tmp_path_factory.mktemp(config.stem) / "work"
    work.mkdir()
    run = run_main(work, "--cores", "2", "--configfile", str(config), profile="local",
                   timeout_s=400)
    return Build(work, run)


@pytest.fixture(scope="module")
def ci_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """ci.yaml end to end with the local profile, once for this module's tests."""
    return local_build(tmp_path_factory, CI)


@pytest.mark.slow
def test_ci_build_runs_locally_and_writes_the_contract_outputs(ci_build: Build) -> None:
    assert ci_build.run.returncode == 0, ci_build.run.output[-4000:]
    assert_ci_outputs(ci_build.workdir)
    assert f"{CI_JOBS} of {CI_JOBS} steps (100%) done" in ci_build.run.output
    verified = ci_build.workdir / f"results/release/{RUN_NAME}.verified"
    assert verified.is_file()
    # the bare mpiexec of the profile ran as the venv's, by absolute path
    assert f"{Path(sys.executable).parent}/mpiexec -n 2 " in ci_build.run.output
    print(f"ci build, local profile: {ci_build.run.seconds:.1f} s")


@pytest.mark.slow
def test_report_holds_curves_tables_and_plots(ci_build: Build, tmp_path: Path) -> None:
    assert ci_build.run.returncode == 0, "the ci build failed; see the test above"
    report = tmp_path / "report.html"
    run = run_main(ci_build.workdir, "--configfile", str(CI), "--report", str(report),
                   timeout_s=120)
    assert run.returncode == 0, run.output[-3000:]
    html = report.read_text()
    for name in ("loss.png", "eval.md", "composition.png", "manifest.json", "plan.png",
                 "plan.json", "plan.md", "campaign.png", "compare.png", "compare.md",
                 "train_prediction.md", "train_trace.json", "README.md"):
        assert name in html, name
    for category in ("Training", "Evaluation", "Data", "Plan", "Predicted vs measured",
                     "Prediction", "Release"):
        assert category in html, category
    # the workflow description page, rendered with this build's config
    page = html.index("fugaku-sim: the build of run")
    assert RUN_NAME in html[page:page + 200]
    table = (ci_build.workdir / "results/plan/train_prediction.md").read_text()
    prediction = json.loads((ci_build.workdir / "results/plan/train_prediction.json").read_text())
    assert table.startswith("# Prediction: ") and f"| {prediction['dp']} |" in table


@pytest.mark.slow
def test_logs_can_be_followed_line_by_line(ci_build: Build) -> None:
    """A new user's build leaves logs that talk: a Megatron-style line per training step,
    items done and ETA of the data stages, the plan and the evaluation; and every JSON the
    verbs printed says what produced it."""
    assert ci_build.run.returncode == 0, "the ci build failed; see the test above"
    logs = ci_build.workdir / "logs"
    steps = yaml.safe_load(CI.read_text())["train"]["settings"]["steps"]
    train = (logs / "train/train.log").read_text().splitlines()
    iterations = [line for line in train if line.startswith("train: iteration ")]
    assert [line.split(" | ")[0] for line in iterations] == [
        f"train: iteration {step}/{steps}" for step in range(1, steps + 1)]
    for words in ("lm loss: ", "learning rate: ", "grad norm: ",
                  "elapsed time per iteration (ms): ", "tokens per second: "):
        assert all(words in line for line in iterations), words
    assert "ETA " in iterations[1]
    collect = (logs / "data/collect.log").read_text()
    assert "data collect: stage 1/1 (100%) | done" in collect
    assert "data collect: manpages-ja " in collect
    # a line between a task's first and its last names its ETA (a quick machine may print none)
    between = [line for line in collect.splitlines() if line.startswith("data collect: ")
               and " 1/" not in line and "(100%)" not in line and "stage " not in line]
    assert all("ETA " in line for line in between), between
    plan = [line for line in (logs / "plan/reference.log").read_text().splitlines()
            if line.startswith("plan: ")]  # (the job script's warnings follow)
    assert plan[0].startswith("plan: layouts 0/") and "(100%)" in plan[-1]
    evaluate = (logs / "eval/evaluate.log").read_text()
    assert "evaluate: arithmetic problems " in evaluate and "evaluate: samples " in evaluate
    for name in ("plan/plan.json", "plan/train_plan.json", "plan/train_prediction.json",
                 "plan/campaign.json"):
        meta = json.loads((ci_build.workdir / "results" / name).read_text())["meta"]
        assert meta["version"] and len(meta["cluster"]["sha256"]) == 64, name
    # the comparison names the profile it predicted on and when that profile was measured
    compare = (ci_build.workdir / "results/compare/run/compare.md").read_text()
    profile = json.loads((ci_build.workdir / "results/compare/run/compare.json").read_text())
    cluster = profile["meta"]["cluster"]
    assert f"Predicted on cluster profile `{cluster['name']}`" in compare
    assert cluster["sha256"][:12] in compare and str(cluster["measured_utc"]) in compare


# --- resumable training ---------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake's process group and anything below it that left the group."""
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


def checkpoint_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name.split("_")[1]) for p in folder.glob("step_*"))


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(ci_build: Build, tmp_path: Path) -> None:
    assert ci_build.run.returncode == 0, "the ci build failed; see the test above"
    work = tmp_path / "work"
    shutil.copytree(ci_build.workdir, work, symlinks=True)  # the data stages are done
    longer = tmp_path / "longer.yaml"
    longer.write_text("train:\n  settings: {steps: 300}\n  checkpoint_every: 10\n"
                      "  eval_every: 100\n")
    config = ("--configfile", str(CI), str(longer))
    run_dir = work / "results/train/run"
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(main_command(work, "--cores", "2", *config, profile="local"),
                                cwd=work, env=workflow_env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            # the 30-step build's folder is moved aside first (other settings), then the new
            # run writes checkpoints; kill once one past step 10 is there
            while not ((work / "results/train/run.replaced").exists()
                       and any(s > 10 for s in checkpoint_steps(run_dir))):
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint past step 10 in time"
                time.sleep(0.05)
        finally:
            kill_everything(proc)
    killed_at = max(checkpoint_steps(run_dir))
    assert killed_at < 300 and not (work / "results/train/summary.json").exists()

    assert run_main(work, "--unlock", *config).returncode == 0  # the SIGKILL left the lock
    run = run_main(work, "--cores", "2", *config, "--rerun-incomplete", profile="local")
    assert run.returncode == 0, run.output[-4000:]
    assert "the trainer resumes from them" in (work / "logs/train/train.log").read_text()
    summary = json.loads((work / "results/train/summary.json").read_text())
    assert summary["steps"] == 300
    assert 10 < summary["resumed_from_step"] <= killed_at
    assert [r["step"] for r in metrics(work)] == list(range(1, 301))  # contiguous, no restart
    assert_ci_outputs(work)


# --- the ci build through the fugaku profile (PJM stand-ins) and a real Slurm ---------------


@pytest.mark.slow
def test_ci_build_through_fugaku_profile_with_pjm_standins(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = run_main(work, "--configfile", str(CI), *FAST_POLLING, profile="fugaku",
                   env=pjm_env(work), timeout_s=480)
    assert run.returncode == 0, run.output[-4000:]
    assert_ci_outputs(work)
    jobs = recorded_jobs(work)
    assert set(jobs) == CLUSTER_JOBS  # the bookkeeping rules ran beside Snakemake
    assert all(j["state"] == "EXT" and j["exit_code"] == 0 for j in jobs.values())
    train = options(jobs["train"])
    assert ("--mpi", "proc=2") in train and ("--mpi", "max-proc-per-node=2") in train  # one node
    assert ("-L", "elapse=02:00:00") in train  # runtime=120 minutes
    assert ("-L", "node=1") in train  # one node: the ci run's cluster is this machine
    assert ("-x", "OMP_NUM_THREADS=1,OPENBLAS_NUM_THREADS=1") in train  # set-threads train=1
    assert ("-L", "rscgrp=small") in train and ("-g", "hp000000") in train
    print(f"ci build, fugaku profile: {run.seconds:.1f} s")


@pytest.mark.slow
def test_ci_build_through_slurm_profile(tmp_path: Path) -> None:
    if not slurm_answers():
        why = "no Slurm answers `sinfo`; start one with workflows/scripts/slurm-local.sh up"
        if os.environ.get("FUGAKU_SIM_REQUIRE_SLURM") == "1":  # CI: Slurm must be there
            pytest.fail(why)
        pytest.skip(why)
    work = tmp_path / "work"
    work.mkdir()
    run = run_main(work, "--configfile", str(CI), profile="slurm", timeout_s=600)
    assert run.returncode == 0, run.output[-4000:]
    assert_ci_outputs(work)
    assert "srun --mpi=pmi2 -n 2 " in run.output
    assert run.output.count("has been submitted with SLURM jobid") == len(CLUSTER_JOBS)
    print(f"ci build, slurm profile: {run.seconds:.1f} s")
