"""The tiny workflow through the slurm profile against a real Slurm.

Skipped unless `sinfo` answers; on one machine start Slurm first with
`workflows/scripts/slurm-local.sh up` (CI does).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SRUN, assert_tiny_outputs, run_snakemake


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not slurm_answers(),
                       reason="no Slurm answers `sinfo`; start one with workflows/scripts/slurm-local.sh up"),
]


def test_tiny_workflow_through_slurm_runs_mpi_with_srun(workdir: Path) -> None:
    run = run_snakemake(workdir, "slurm", "--set-resources", f"mpi_sum:mpi={SRUN!r}", timeout_s=300)
    assert run.returncode == 0, run.output[-3000:]
    assert_tiny_outputs(workdir)
    assert "srun --mpi=pmi2 -n 2 " in run.output
    assert "has been submitted with SLURM jobid" in run.output


def test_failing_job_is_reported_failed_by_slurm(workdir: Path) -> None:
    run = run_snakemake(workdir, "slurm", "results/tiny/fail.txt", timeout_s=180)
    assert run.returncode != 0
    assert "Error in rule fail" in run.output
    assert not (workdir / "results/tiny/fail.txt").exists()
