"""Megatron-LM / Megatron-DeepSpeed logs -> measured runs.

The fixtures under ``data/`` are written in the exact format the frameworks print (the
arguments block of ``_print_args``, the padded-vocabulary line, ``training_log``'s iteration
lines and the memory reports), as found in public logs: a Megatron-DeepSpeed CPU run like the
Fugaku team's (TFLOPs per rank, CPU memory), a 2021 Megatron-LM GPU run (fp16, TP2 x PP4,
full recomputation, per-rank timers and GPU memory), and a Megatron-Core run with torchrun
prefixes, timestamps, ``(ms): this/mean`` and settings the simulator does not model.
"""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

import pytest

from fugaku_sim.calibrate.measured import format_runs, job_of, parse_runs
from fugaku_sim.calibrate.megatron_log import parse_megatron_log, run_from_megatron_log
from fugaku_sim.errors import UserError

DATA = Path(__file__).parent / "data"


def test_megatron_deepspeed_cpu_run() -> None:
    run = run_from_megatron_log(DATA / "megatron_deepspeed_a64fx.log", cluster="fugaku",
                                processes_per_node=1, clock_GHz=2.0,
                                conditions={"pytorch": "1.10"})
    # iterations 3..6 are timed (2 warm-up steps); the median of their ms, in seconds
    assert run.step_time_s == pytest.approx(
        statistics.median([2533002.9, 2530114.6, 2539870.3, 2535210.8]) / 1000)
    assert run.steps_timed == 4 and run.time_quality == "measured"
    assert (run.layers, run.hidden, run.heads, run.ffn_hidden, run.seq_len, run.vocab) == (
        24, 2048, 32, 8192, 1024, 50688)
    assert (run.tp, run.pp, run.dp, run.nodes, run.processes_per_node) == (4, 1, 1, 4, 1)
    assert (run.micro_batch, run.global_batch, run.recompute, run.precision) == (
        1, 1024, "none", "fp32")
    assert run.framework == "megatron" and run.zero_stage == 0 and not run.overlap_grad_reduce
    assert run.reported_tflops_per_rank == pytest.approx(0.86)
    assert (run.mem_MiB, run.mem_basis) == (18870.04, "node-used")
    assert run.date == datetime.date(2023, 2, 15)
    assert run.conditions == {"ddp_impl": "local", "pytorch": "1.10"}
    assert run.representable and run.clock_GHz == 2.0
    assert job_of(run).nodes == 4


def test_megatron_lm_gpu_run_with_pipeline_and_recomputation() -> None:
    run = run_from_megatron_log(DATA / "megatron_lm_gpu.log", cluster="dgx-a100",
                                processes_per_node=8, warmup_steps=3)
    times = [12563.1, 12601.0, 12588.8, 12570.2, 12592.5]
    assert run.step_time_s == pytest.approx(statistics.median(times) / 1000)
    assert run.steps_timed == 5
    assert (run.tp, run.pp, run.dp, run.nodes, run.schedule) == (2, 4, 1, 1, "1f1b")
    assert (run.recompute, run.precision, run.global_batch, run.vocab) == (
        "all", "fp16", 64, 50432)
    assert (run.mem_MiB, run.mem_basis) == (21530.7 + 311 * 6, "rank-peak")
    assert run.reported_tflops_per_rank is None
    assert run.id == "megatron_lm_gpu" and run.model == "gpt-40l-5120h"
    job = job_of(run)
    assert job.layout.pp == 4 and job.recompute_stages == frozenset(range(4))


def test_megatron_core_run_is_kept_but_not_representable() -> None:
    run = run_from_megatron_log(DATA / "megatron_core_gpu.log", cluster="dgx-a100",
                                processes_per_node=8, run_id="llama-8b")
    # log_interval 2: the line of iteration 2 covers steps 1-2 (warm-up); 4 lines x 2 steps
    assert run.steps_timed == 8
    assert run.step_time_s == pytest.approx(statistics.median(
        [11604.2, 11588.9, 11620.4, 11597.0]) / 1000)
    assert run.reported_tflops_per_rank == pytest.approx(statistics.median(
        [round(400 * 11600 / t, 1) for t in (11604.2, 11588.9, 11620.4, 11597.0)]))
    assert (run.dp, run.precision, run.recompute, run.zero_stage) == (2, "bf16", "selective", 1)
    assert run.sequence_parallel and run.overlap_grad_reduce and run.tied_embeddings is False
    assert not run.representable
    assert run.reason is not None
    for what in ("SwiGLU", "grouped-query attention (8 groups)"):
        assert what in run.reason
    # selective recomputation and sequence parallelism are modelled
    assert "selective" not in run.reason and "sequence" not in run.reason
    assert run.date == datetime.date(2025, 5, 27) and run.id == "llama-8b"


def test_imported_rows_round_trip_through_a_runs_file() -> None:
    runs = [run_from_megatron_log(DATA / name, cluster=cluster, processes_per_node=ppn)
            for name, cluster, ppn in (("megatron_deepspeed_a64fx.log", "fugaku", 1),
                                       ("megatron_lm_gpu.log", "dgx-a100", 8),
                                       ("megatron_core_gpu.log", "dgx-a100", 8))]
    assert parse_runs(format_runs(runs), Path("imported.csv")) == runs


def test_arguments_block_is_parsed_whatever_the_prefix() -> None:
    log = parse_megatron_log(DATA / "megatron_core_gpu.log")
    assert log.args["recompute_granularity"] == "selective"
    assert log.args["num_query_groups"] == "8"
    assert log.padded_vocab == 128256 and len(log.iterations) == 5


def _log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.log"
    path.write_text(text, encoding="utf-8")
    return path


def _replace(tmp_path: Path, old: str, new: str) -> Path:
    text = (DATA / "megatron_deepspeed_a64fx.log").read_text(encoding="utf-8")
    assert old in text
    return _log(tmp_path, text.replace(old, new))


def test_errors_name_the_log(tmp_path: Path) -> None:
    kw = {"cluster": "fugaku", "processes_per_node": 1}
    no_args = _log(tmp_path, " iteration 1/ 2 | elapsed time per iteration (ms): 10.0 |\n")
    with pytest.raises(UserError, match=r"run\.log: no Megatron arguments block"):
        run_from_megatron_log(no_args, **kw)
    text = (DATA / "megatron_deepspeed_a64fx.log").read_text(encoding="utf-8")
    twice = _log(tmp_path, text + text)
    with pytest.raises(UserError, match=r"run\.log:\d+: a second arguments block"):
        run_from_megatron_log(twice, **kw)
    with pytest.raises(UserError, match="no logged iteration after the 6 warm-up steps"):
        run_from_megatron_log(DATA / "megatron_deepspeed_a64fx.log", warmup_steps=6, **kw)
    with pytest.raises(UserError, match="world_size 4 is not a multiple"):
        run_from_megatron_log(DATA / "megatron_deepspeed_a64fx.log", cluster="fugaku",
                              processes_per_node=3)
    no_vocab = _replace(tmp_path, "(new size: 50688)", "(new size: ?)")
    with pytest.raises(UserError, match="no padded vocabulary"):
        run_from_megatron_log(no_vocab, **kw)
    bad_arg = _replace(tmp_path, "micro_batch_size ................................ 1",
                       "micro_batch_size ................................ one")
    with pytest.raises(UserError, match="argument micro_batch_size is 'one', not an integer"):
        run_from_megatron_log(bad_arg, **kw)
    ramp = _replace(tmp_path, "global batch size:  1024 | lm loss: 9.100000E+00",
                    "global batch size:   512 | lm loss: 9.100000E+00")
    with pytest.raises(UserError, match="global batch size changes"):
        run_from_megatron_log(ramp, **kw)
