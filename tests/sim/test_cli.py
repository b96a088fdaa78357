"""The predict, plan and sweep verbs end to end: JSON contract, trace, job scripts, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fugaku_sim.sim.plan import plan_layouts
from fugaku_sim.spec import ModelSpec, TrainSpec
from tests.sim.small import small_torus

DONE = [
    "predict",
    "--cluster",
    "fugaku",
    "--model",
    "fugaku-llm-13b",
    "--tp",
    "6",
    "--pp",
    "8",
    "--dp",
    "288",
    "--micro-batch",
    "1",
    "--global-batch",
    "2016",
    "--tokens",
    "380e9",
]


def test_predict_json_done_command(run_cli) -> None:
    status, out, err = run_cli(*DONE, "--json")
    assert status == 0, err
    d = json.loads(out)
    assert d["recompute_stages"] == [0, 1, 2, 3]
    assert d["time_to_train_days"] > 0 and d["energy_MWh"] > 0
    assert sum(d["breakdown_s"].values()) == pytest.approx(d["step_time_s"])


def test_predict_table(run_cli) -> None:
    status, out, _ = run_cli("predict", "--cluster", "fugaku", "--model", "fugaku-llm-13b")
    assert status == 0
    assert "step time breakdown" in out and "bubble" in out and "time to train" in out


def test_trace_is_chrome_trace_json(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "step.json"
    status, _, err = run_cli(*DONE, "--json", "--trace", str(path))
    assert status == 0, err
    doc = json.loads(path.read_text())
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    names = {e["name"] for e in slices}
    assert {"F0", "B6", "RB0", "send F0", "tp F0", "grad sync", "optimizer"} <= names
    assert {e["pid"] for e in slices} == set(range(8))
    assert all(e["dur"] > 0 and e["ts"] >= 0 for e in slices)
    lanes = {(e["args"]["name"]) for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    assert lanes == {"compute", "comm"}
    last = max(e["ts"] + e["dur"] for e in slices)
    assert last == pytest.approx(float(doc["otherData"]["step_time_s"]) * 1e6, rel=1e-9)


def test_bad_layout_exits_2_with_one_line(run_cli) -> None:
    status, _, err = run_cli(
        "predict",
        "--cluster",
        "fugaku",
        "--model",
        "fugaku-llm-13b",
        "--tp",
        "5",
        "--pp",
        "8",
        "--dp",
        "288",
    )
    assert status == 2
    assert err.count("\n") == 1 and "layout.tp" in err


def test_job_shape_that_does_not_fit_exits_2(run_cli) -> None:
    status, _, err = run_cli(*DONE, "--job-shape", "96x6x24")
    assert status == 2 and "job_shape" in err


def test_plan_emits_pjsub_script_and_vcoordfile(run_cli, tmp_path: Path) -> None:
    status, out, err = run_cli(
        "plan",
        "--cluster",
        "fugaku",
        "--model",
        "gpt2-small",
        "--nodes",
        "12",
        "--global-batch",
        "24",
        "--tokens",
        "1e9",
        "--json",
        "--emit-job",
        str(tmp_path),
        "--plot",
        str(tmp_path / "plan.png"),
    )
    assert status == 0, err
    rows = json.loads(out)["plans"]
    speeds = [r["tokens_per_s"] for r in rows]
    assert speeds == sorted(speeds, reverse=True)
    script = (tmp_path / "job.pjm.sh").read_text()
    best = rows[0]
    assert f'#PJM -L "node={best["job_shape"]}:torus"' in script
    assert f'#PJM --mpi "proc={best["nodes"]}"' in script and '#PJM -L "freq=2200"' in script
    assert '#PJM -L "elapse=' in script and "-vcoordfile ./rankmap.vcoord" in script
    lines = (tmp_path / "rankmap.vcoord").read_text().splitlines()
    assert len(lines) == best["tp"] * best["pp"] * best["dp"]
    assert all(line.startswith("(") and line.count(",") == 2 for line in lines)
    assert len(set(lines)) == best["nodes"]
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"


def test_plan_with_no_fitting_layout_names_the_smallest(run_cli) -> None:
    status, _, err = run_cli(
        "plan",
        "--cluster",
        "fugaku",
        "--model",
        "gpt3-175b",
        "--nodes",
        "12",
        "--global-batch",
        "12",
    )
    assert status == 2
    assert "no layout fits 28.0 GiB per node: the smallest needs" in err


def test_plan_on_gpu_cluster_writes_sbatch(run_cli, tmp_path: Path) -> None:
    status, _, err = run_cli(
        "plan",
        "--cluster",
        "dgx-a100",
        "--model",
        "gpt2-xl",
        "--nodes",
        "2",
        "--global-batch",
        "64",
        "--tokens",
        "1e9",
        "--top",
        "3",
        "--emit-job",
        str(tmp_path),
    )
    assert status == 0, err
    script = (tmp_path / "job.sbatch.sh").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=8" in script
    assert len((tmp_path / "rankmap.nodes").read_text().split()) == 16


def test_sweep_writes_csv_and_png(run_cli, tmp_path: Path) -> None:
    status, _, err = run_cli(
        "sweep",
        "--cluster",
        "fugaku",
        "--model",
        "fugaku-llm-13b",
        "--vary",
        "link_bw",
        "--values",
        "3.4",
        "6.8",
        "--out",
        str(tmp_path),
    )
    assert status == 0, err
    with (tmp_path / "sweep-link_bw.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["value"]) for r in rows] == [3.4, 6.8]
    assert float(rows[0]["step_time_s"]) >= float(rows[1]["step_time_s"])
    assert (tmp_path / "sweep-link_bw.png").stat().st_size > 10_000


def test_plan_prunes_by_memory_before_simulating() -> None:
    model = ModelSpec(name="m", layers=4, hidden=512, heads=8, seq_len=256, vocab=8000)
    result = plan_layouts(small_torus((2, 2, 2)), model, TrainSpec(global_batch=16), 8)
    assert result.predictions and result.considered >= len(result.predictions)
    assert all(p.to_json()["fits_memory"] for p in result.predictions)


@pytest.mark.slow
def test_full_fugaku_llm_plan(run_cli, tmp_path: Path) -> None:
    status, out, err = run_cli(
        "plan",
        "--cluster",
        "fugaku",
        "--model",
        "fugaku-llm-13b",
        "--nodes",
        "13824",
        "--global-batch",
        "2016",
        "--json",
        "--emit-job",
        str(tmp_path),
    )
    assert status == 0, err
    rows = json.loads(out)["plans"]
    assert any((r["tp"], r["pp"], r["dp"]) == (6, 8, 288) for r in rows)
    assert len((tmp_path / "rankmap.vcoord").read_text().splitlines()) == 13824


def test_plan_emit_job_needs_a_layout_the_trainer_runs(run_cli, tmp_path: Path) -> None:
    """The job script runs this tool's trainer, which has no fused (flash) attention kernel:
    one error line naming the option and why (after the progress lines), exit 2, no script."""
    status, _, err = run_cli("plan", "--cluster", "dgx-a100", "--model", "llama-2-7b",
                             "--nodes", "1", "--global-batch", "16", "--precision", "bf16",
                             "--attention", "flash", "--top", "1",
                             "--emit-job", str(tmp_path / "job"))
    assert status == 2
    errors = [line for line in err.splitlines() if not line.startswith("plan: ")]
    assert len(errors) == 1 and errors[0].startswith("fugaku-sim: error: --emit-job: no layout")
    assert "not modelled by the trainer" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "job").exists()
