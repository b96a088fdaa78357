"""The tiny workflow through the fugaku profile, with pjsub/pjstat/pjdel stand-ins on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SCRIPTS, STANDINS, assert_tiny_outputs, run_snakemake

FAST_POLLING = ("--seconds-between-status-checks", "1", "--max-status-checks-per-second", "10")


def pjm_env(workdir: Path) -> dict[str, str]:
    return {
        "PATH": f"{STANDINS}:/usr/bin:/bin",
        "PJM_STANDIN_DIR": str(workdir.parent / "pjm"),
        "FUGAKU_PJM_GROUP": "hp000000",
        "FUGAKU_PJM_RSCGRP": "small",
        "FUGAKU_PJM_VOLUMES": "/vol0004:/vol0005",
        "FUGAKU_PJM_LLIO": "localtmp-size=10Gi",
        "FUGAKU_PJM_FREQ": "2200",
    }


def recorded_jobs(workdir: Path) -> dict[str, dict]:
    """Jobs the pjsub stand-in recorded, by Snakemake rule."""
    jobs = {}
    for path in (workdir.parent / "pjm" / "jobs").glob("*.json"):
        job = json.loads(path.read_text())
        rule = job["name"].split("-")[1]
        jobs[rule] = job
    return jobs


def options(job: dict) -> list[tuple[str, str]]:
    return [(o, v) for o, v in job["options"]]


@pytest.mark.slow
def test_tiny_workflow_through_pjm_records_the_right_directives(workdir: Path) -> None:
    run = run_snakemake(workdir, "fugaku", *FAST_POLLING, env=pjm_env(workdir), timeout_s=180)
    assert run.returncode == 0, run.output[-3000:]
    assert_tiny_outputs(workdir)
    jobs = recorded_jobs(workdir)
    assert sorted(jobs) == ["make_numbers", "mpi_sum", "summarize"]
    assert all(j["state"] == "EXT" and j["exit_code"] == 0 for j in jobs.values())

    mpi = options(jobs["mpi_sum"])
    assert ("-L", "node=2x1x1:torus") in mpi  # from resources.pjm_shape
    assert ("-L", "elapse=00:05:00") in mpi  # runtime=5 minutes
    assert ("--mpi", "proc=2") in mpi  # tasks=2
    assert ("-L", "rscgrp=small") in mpi
    assert ("-L", "freq=2200") in mpi
    assert ("-g", "hp000000") in mpi
    assert ("-x", "PJM_LLIO_GFSCACHE=/vol0004:/vol0005") in mpi
    assert ("--llio", "localtmp-size=10Gi") in mpi

    serial = options(jobs["make_numbers"])
    assert ("-L", "node=1") in serial
    assert ("-L", "elapse=01:00:00") in serial  # the profile's default runtime, 60 minutes
    assert ("--mpi", "proc=1") in serial
    # the job's own output went where the -o directive said
    out = next(v for o, v in mpi if o == "-o").replace("%j", str(jobs["mpi_sum"]["id"]))
    assert Path(out).exists()


@pytest.mark.slow
def test_failing_job_is_reported_failed(workdir: Path) -> None:
    env = pjm_env(workdir)
    run = run_snakemake(workdir, "fugaku", *FAST_POLLING, "results/tiny/fail.txt", env=env, timeout_s=120)
    assert run.returncode != 0
    assert "Error in rule fail" in run.output
    assert not (workdir / "results/tiny/fail.txt").exists()
    job = recorded_jobs(workdir)["fail"]
    assert job["state"] == "EXT" and job["exit_code"] != 0
    status = subprocess.run([str(SCRIPTS / "pjm-status"), str(job["id"])], env=_env(env),
                            capture_output=True, text=True, timeout=30)
    assert status.stdout == "failed\n"
    assert "EXT, exit code 1" in status.stderr


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def fake_jobscript(path: Path, body: str, **resources: object) -> Path:
    """A job script shaped like the ones Snakemake writes for cluster-generic."""
    props = {"type": "single", "rule": "sleepy", "jobid": 7, "threads": 1,
             "resources": {"runtime": 1, "tasks": 1, **resources}}
    path.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n{body}\n")
    return path


def test_cancel_turns_a_running_job_into_failed(tmp_path: Path) -> None:
    env = _env(pjm_env(tmp_path / "work"))
    script = fake_jobscript(tmp_path / "job.sh", "sleep 60")
    submit = subprocess.run([str(SCRIPTS / "pjm-submit"), str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30)
    assert submit.returncode == 0, submit.stderr
    jobid = submit.stdout.strip()
    assert jobid.isdigit()

    def status() -> str:
        return subprocess.run([str(SCRIPTS / "pjm-status"), jobid], env=env,
                              capture_output=True, text=True, timeout=30).stdout.strip()

    deadline = time.monotonic() + 20
    while json.loads((tmp_path / "pjm/jobs" / f"{jobid}.json").read_text())["state"] != "RUN":
        assert time.monotonic() < deadline, "stand-in job never started"
        time.sleep(0.1)
    assert status() == "running"
    cancel = subprocess.run([str(SCRIPTS / "pjm-cancel"), jobid], env=env, capture_output=True,
                            text=True, timeout=30)
    assert cancel.returncode == 0, cancel.stderr
    assert status() == "failed"


@pytest.mark.parametrize(
    ("resources", "env", "message"),
    [
        ({"pjm_shape": "2x0"}, {}, "resources.pjm_shape must look like"),
        ({"pjm_shape": "2x3", "nodes": 5}, {}, "resources.nodes=5 disagrees"),
        ({"runtime": "soon"}, {}, "resources.runtime must be a positive integer"),
        ({}, {"FUGAKU_PJM_ALLOC": "ring"}, "FUGAKU_PJM_ALLOC must be one of"),
    ],
)
def test_submit_rejects_bad_input_in_one_line(tmp_path: Path, resources: dict, env: dict,
                                              message: str) -> None:
    script = fake_jobscript(tmp_path / "job.sh", "true", **resources)
    done = subprocess.run([str(SCRIPTS / "pjm-submit"), "--dry-run", str(script)], cwd=tmp_path,
                          env=_env(env), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


@pytest.mark.parametrize("script", ["pjm-submit", "pjm-status", "pjm-cancel"])
def test_scripts_print_usage_and_exit_2_without_arguments(script: str) -> None:
    done = subprocess.run([str(SCRIPTS / script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith(f"usage: {script} ")


def test_dry_run_submit_prints_the_job_script(tmp_path: Path) -> None:
    script = fake_jobscript(tmp_path / "job.sh", "cd /x && /venv/bin/python3 -m snakemake --x",
                            pjm_shape="48x6x48", tasks=13824, runtime=1500, pjm_rscgrp="large")
    env = _env({"FUGAKU_PJM_PYTHON": "/vol0004/env/bin/python3", "FUGAKU_PJM_SETUP": ". setup.sh"})
    done = subprocess.run([str(SCRIPTS / "pjm-submit"), "--dry-run", str(script)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("#!/bin/bash\n")
    assert '#PJM -L "node=48x6x48:torus"' in text
    assert '#PJM -L "rscgrp=large"' in text
    assert '#PJM -L "elapse=25:00:00"' in text
    assert '#PJM --mpi "proc=13824"' in text
    assert "\n. setup.sh\n" in text
    assert "cd /x && /vol0004/env/bin/python3 -m snakemake --x" in text
