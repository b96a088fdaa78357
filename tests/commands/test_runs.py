"""``fugaku-sim runs``: check runs files (exit 2 on a malformed row), import logs and runs."""

from __future__ import annotations

import json
from pathlib import Path

from fugaku_sim.calibrate.measured import read_runs

DATA = Path(__file__).resolve().parents[1] / "calibrate" / "data"
RUNS = Path(__file__).resolve().parents[2] / "clusters" / "runs"


def test_check_counts_the_shipped_files(run_cli) -> None:
    status, out, err = run_cli("runs", "check", str(RUNS / "fugaku-deepspeed-2023.csv"),
                               str(RUNS / "megatron-sc21.csv"), "--json")
    assert status == 0, err
    doc = json.loads(out)
    counts = doc["files"]
    assert [f["name"] for f in doc["meta"]["runs"]] == list(counts)  # each file's sha256
    fugaku = counts[str(RUNS / "fugaku-deepspeed-2023.csv")]
    assert (fugaku["rows"], fugaku["with_time"], fugaku["representable"]) == (103, 98, 103)
    assert counts[str(RUNS / "megatron-sc21.csv")]["time_quality"] == {"derived": 13}
    status, out, _ = run_cli("runs", "check", str(RUNS / "megatron-sc21.csv"))
    assert status == 0 and "megatron-sc21.csv" in out


def test_a_malformed_row_exits_2_with_one_line(run_cli, tmp_path: Path) -> None:
    text = (RUNS / "megatron-sc21.csv").read_text(encoding="utf-8").splitlines()
    header_line = next(i for i, line in enumerate(text) if line.startswith("id,"))
    bad = text[header_line + 2].replace(",dgx-a100,", ",dgx-a100,", 1).split(",")
    tp_col = text[header_line].split(",").index("tp")
    bad[tp_col] = "three"
    text[header_line + 2] = ",".join(bad)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    status, out, err = run_cli("runs", "check", str(path))
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"fugaku-sim: error: {path}:{header_line + 3}:{tp_col + 1}: tp: ")


def test_a_row_the_spec_rejects_names_the_run(run_cli, tmp_path: Path) -> None:
    text = (RUNS / "megatron-sc21.csv").read_text(encoding="utf-8")
    path = tmp_path / "bad.csv"
    path.write_text(text.replace(",dgx-a100,", ",no-such-cluster,", 1), encoding="utf-8")
    status, _, err = run_cli("runs", "check", str(path))
    assert status == 2
    assert "run sc21-table1-1.7b:" in err and "no-such-cluster" in err


def test_import_megatron_logs(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "imported.csv"
    status, stdout, err = run_cli(
        "runs", "megatron", str(DATA / "megatron_lm_gpu.log"), str(DATA / "megatron_core_gpu.log"),
        "--cluster", "dgx-a100", "--processes-per-node", "8", "--condition", "pytorch=1.9",
        "--out", str(out))
    assert status == 0, err
    assert "wrote" in stdout
    runs = read_runs(out)
    assert [r.id for r in runs] == ["megatron_lm_gpu", "megatron_core_gpu"]
    assert [r.representable for r in runs] == [True, False]
    assert all(r.conditions["pytorch"] == "1.9" for r in runs)
    status, _, err = run_cli("runs", "check", str(out))
    assert status == 0, err


def test_import_prints_csv_without_out_and_rejects_bad_input(run_cli) -> None:
    status, stdout, _ = run_cli("runs", "megatron", str(DATA / "megatron_deepspeed_a64fx.log"),
                                "--cluster", "fugaku", "--processes-per-node", "1")
    assert status == 0 and stdout.startswith("id,cluster,model,")
    status, _, err = run_cli("runs", "megatron", str(DATA / "megatron_lm_gpu.log"), "--cluster",
                             "dgx-a100", "--processes-per-node", "8", "--condition", "nokey")
    assert status == 2 and "--condition: 'nokey' is not KEY=VALUE" in err
    status, _, err = run_cli("runs", "megatron", str(DATA / "megatron_lm_gpu.log"),
                             str(DATA / "megatron_lm_gpu.log"), "--cluster", "dgx-a100",
                             "--processes-per-node", "8")
    assert status == 2 and "id: 'megatron_lm_gpu' is already the id" in err
    status, _, err = run_cli("runs", "megatron", str(DATA / "missing.log"), "--cluster",
                             "dgx-a100", "--processes-per-node", "8")
    assert status == 2 and "missing.log: cannot read the log" in err


def test_import_trainer_runs(run_cli, tmp_path: Path) -> None:
    from tests.calibrate.test_trainer_log import TIMES, _write_run

    run_dir = _write_run(tmp_path / "tp2-dp2", TIMES)
    out = tmp_path / "local.csv"
    status, _, err = run_cli("runs", "trainer", str(run_dir), "--cluster", "local",
                             "--warmup", "1", "--out", str(out))
    assert status == 0, err
    (run,) = read_runs(out)
    assert run.id == "tp2-dp2" and run.framework == "fugaku-sim" and run.steps_timed == 5
