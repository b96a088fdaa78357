"""The tiny workflow under the local profile, dry runs under every profile, and lint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PROFILES, SNAKEMAKE, SRUN, STANDINS, TINY, assert_tiny_outputs, run_snakemake


@pytest.mark.slow
def test_tiny_workflow_runs_with_local_profile_without_venv_on_path(workdir: Path) -> None:
    run = run_snakemake(workdir, "local", "--cores", "2", timeout_s=120)
    assert run.returncode == 0, run.output[-3000:]
    assert_tiny_outputs(workdir)
    # the bare "mpiexec" of the profile was resolved to the venv's, by absolute path
    assert "/bin/mpiexec -n 2 " in run.output


def test_failing_rule_fails_locally_and_leaves_no_output(workdir: Path) -> None:
    run = run_snakemake(workdir, "local", "--cores", "1", "results/tiny/fail.txt", timeout_s=60)
    assert run.returncode != 0
    assert "Error in rule fail" in run.output
    assert not (workdir / "results/tiny/fail.txt").exists()
    assert "failing on purpose" in (workdir / "logs/tiny/fail.log").read_text()


@pytest.mark.parametrize("profile", ["local", "slurm", "fugaku"])
def test_dry_run_under_every_profile(workdir: Path, profile: str) -> None:
    # A profile is a command-line concept (the Python API takes settings objects), so the dry
    # runs go through the command line; the stand-ins on PATH make the fugaku profile's
    # scripts resolvable, though a dry run calls none of them.
    extra = ["--set-resources", f"mpi_sum:mpi={SRUN!r}"] if profile == "slurm" else []
    run = run_snakemake(workdir, profile, "-n", "--cores", "2", *extra,
                        env={"PATH": f"{STANDINS}:/usr/bin:/bin"}, timeout_s=60)
    assert run.returncode == 0, run.output[-3000:]
    for rule in ("make_numbers", "mpi_sum", "summarize"):
        assert f"rule {rule}:" in run.output
    assert not (workdir / "results").exists()


def test_every_profile_is_a_mapping_snakemake_reads() -> None:
    import yaml

    names = sorted(p.name for p in PROFILES.iterdir() if (p / "profile.yaml").exists())
    assert names == ["fugaku", "local", "slurm"]
    for name in names:
        profile = yaml.safe_load((PROFILES / name / "profile.yaml").read_text())
        assert profile["rerun-incomplete"] is True and profile["printshellcmds"] is True
        assert profile["default-resources"]["tasks"] == 1


def test_tiny_workflow_dry_run_and_lint_through_python_api(tmp_path: Path) -> None:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(
                cores=2, default_resources={"mpi": "mpiexec", "tasks": 1}
            ),
            storage_settings=StorageSettings(),
            snakefile=TINY,
            workdir=tmp_path,
        )
        assert workflow.lint() is False  # False: no lints found
        workflow.dag(DAGSettings()).execute_workflow(executor="dryrun")
    assert not (tmp_path / "results").exists()


def test_lint_is_clean_on_the_command_line(workdir: Path) -> None:
    done = subprocess.run([str(SNAKEMAKE), "-s", str(TINY),
                           "-d", str(workdir), "--lint"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
