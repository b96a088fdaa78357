"""The compute suite's timing: interleaved cases, and cases that time parts of themselves."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fugaku_sim.calibrate.bench import (
    MODEL_PHASES,
    MODEL_SHAPES_QUICK,
    Case,
    kernel_cases,
    model_pass,
    time_cases,
)


def _self_comm() -> Any:
    mpi = pytest.importorskip("mpi4py.MPI")
    return mpi.COMM_SELF


class _Parts:
    """A call that reports fixed seconds per part per call (what a pass's clock would sum)."""

    def __init__(self) -> None:
        self.calls = 0

    def op(self) -> None:
        self.calls += 1

    def phases(self) -> dict[str, float]:
        out = {"a": 1e-3 * self.calls, "b": 3e-3 * self.calls}
        self.calls = 0
        return out


def test_a_case_with_phases_gives_one_row_per_part_per_call() -> None:
    """Each part's row is its seconds per call (the sums over a loop divided by the loop's
    calls, whatever ran before the loop dropped), with the case's row keys; a plain case
    gives one row of the whole call."""
    parts = _Parts()
    cases = [Case({"section": "kernels", "B": 2}, parts.op, 1.0, phases=parts.phases),
             Case({"section": "tiny_ops", "op": "spin"}, lambda: _spin_s(1e-3), 0.5)]
    rows = time_cases(_self_comm(), cases, budget_s=0.02, trials=3)
    assert [r.get("kernel") for r in rows] == ["a", "b", None]
    assert rows[0] == {"section": "kernels", "B": 2, "kernel": "a",
                       "seconds": pytest.approx(1e-3), "seconds_per_rank": [pytest.approx(1e-3)]}
    assert rows[1]["seconds"] == pytest.approx(3e-3)
    assert rows[2]["op"] == "spin" and rows[2]["seconds"] >= 1e-3


def _spin_s(seconds: float) -> None:
    """Keep the CPU busy for ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_compute_is_timed_on_the_cpu_clock() -> None:
    """Time the scheduler gives to other work (here: the process sleeping) is not the
    kernel's: a compute case that sleeps 20 ms and spins 2 ms is timed at about 2 ms, where
    the wall clock would say 22."""
    def op() -> None:
        time.sleep(0.02)
        _spin_s(2e-3)

    (row,) = time_cases(_self_comm(), [Case({"section": "gemm"}, op)], budget_s=0.15, trials=3)
    assert 1.5e-3 <= row["seconds"] < 8e-3


def test_model_pass_times_its_parts() -> None:
    """The pass runs the trainer's model through embedding, blocks, head and back; its
    phases are every part's time, summing to no more than the calls took, then reset."""
    b, t, c, heads, v, layers = MODEL_SHAPES_QUICK[0]
    step, phases = model_pass(b, t, c, heads, v, layers)
    step()
    phases()
    start = time.perf_counter()
    for _ in range(3):
        step()
    wall = time.perf_counter() - start
    got = phases()
    assert tuple(got) == MODEL_PHASES and all(s > 0 for s in got.values())
    total = sum(s * (layers if k.startswith("block_") else 1) for k, s in got.items())
    assert total <= wall
    assert set(phases().values()) == {0.0}


def test_kernel_cases_time_whole_model_passes_by_part() -> None:
    """The block, head and embedding rows come from model passes (a case with phases, its
    row naming the shape); the single kernels are plain cases."""
    cases = [c for c in kernel_cases(quick=True) if c.row["section"] == "kernels"]
    passes = [c for c in cases if c.phases is not None]
    assert [(c.row["B"], c.row["T"], c.row["C"], c.row["heads"], c.row["V"], c.row["layers"])
            for c in passes] == list(MODEL_SHAPES_QUICK)
    assert all("kernel" not in c.row for c in passes)
    assert all("kernel" in c.row for c in cases if c.phases is None)


@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 2, 4])
def test_lone_rounds_run_on_rank_0_while_the_others_rest(n: int) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from tests.train.mpi_job import MPIEXEC, REPO, env

    if MPIEXEC is None:
        pytest.skip("no mpiexec")
    cmd = [str(MPIEXEC), "-n", str(n), sys.executable,
           str(Path(__file__).with_name("mpi_lone.py"))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env(), cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"passed on {n} ranks" in r.stdout


def test_sync_compute_is_the_trainers_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compute between the sync benchmark's all-reduces is the trainer's own block
    forward, cycling over the layers of the SYNC_BLOCKS model, once per pass."""
    from fugaku_sim.calibrate import bench
    from fugaku_sim.train import model as M

    seen: list[int] = []
    real = M.block_forward

    def counted(p, spec, layer, x, share, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(layer)
        out = real(p, spec, layer, x, share, *a, **k)
        assert out[0].shape == x.shape == (bench.SYNC_BATCH, spec.seq_len, spec.hidden)
        return out

    monkeypatch.setattr(M, "block_forward", counted)
    bench._block_passes()(6)
    assert seen == [0, 1, 2, 3, 0, 1]
