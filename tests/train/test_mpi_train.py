"""The trainer under real MPI: every layout of 1, 2 and 4 ranks gives the single-rank run's
losses, resume is exact, a changed layout re-shards, faults end the job, bad input exits 2.

Each test spawns ``mpiexec -n N`` with a timeout; commands of one rank count share a job
(``mpi_runs.py``). Expected values follow from the communicator size: the single-rank run.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS

from .helpers import write_data, write_llama_model, write_model
from .mpi_job import MPIEXEC, cli, grad_norms, layout_args, losses, mpirun, weights

REL = 1e-5  # loss agreement across layouts (relative)

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec"),
]

# (tp, pp, dp, extra options): layouts of 2 and 4 ranks, plus ZeRO-1, overlap, small buckets,
# GPipe, interleaving and recomputation on some of them
LAYOUTS_2 = [
    (2, 1, 1, []),
    (1, 2, 1, []),
    (1, 1, 2, []),
    (1, 2, 1, ["--schedule", "gpipe", "--recompute", "first-half"]),
    (1, 1, 2, ["--zero", "1", "--overlap-grad-reduce", "--grad-bucket-mb", "0.002"]),
    (1, 2, 1, ["--schedule", "interleaved", "--virtual-stages", "2"]),
]
LAYOUTS_4 = [
    (2, 2, 1, []),
    (2, 1, 2, ["--zero", "1"]),
    (1, 2, 2, ["--overlap-grad-reduce", "--grad-bucket-mb", "0.002"]),
    (1, 2, 2, ["--schedule", "interleaved", "--virtual-stages", "2", "--recompute", "all",
               "--zero", "1", "--overlap-grad-reduce"]),
    (1, 4, 1, []),
]


def start_job(root: Path, model: Path, data: Path | None = None) -> dict[str, Any]:
    """The single-rank reference run of ``model`` (and a data directory, unless given)."""
    data = data or write_data(root / "data")
    base = ["train", "--model", str(model), "--data", str(data), "--no-progress",
            "--lr", "1e-2", "--eval-every", "3"]
    ref = root / "ref"
    r = mpirun(1, [[*base, "--out", str(ref), "--checkpoint-every", "2"]])
    assert r.returncode == 0, r.stderr
    return {"root": root, "data": data, "model": model, "base": base, "ref": ref}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mpi")
    return start_job(root, write_model(root / "model.yaml"))


def check_equivalent(job: dict[str, Any], n: int, layouts: list[Any]) -> None:
    outs = [job["root"] / f"n{n}_{i}" for i in range(len(layouts))]
    commands = [[*job["base"], *layout_args(tp, pp, dp), *extra, "--out", str(out)]
                for (tp, pp, dp, extra), out in zip(layouts, outs)]
    r = mpirun(n, commands)
    assert r.returncode == 0, r.stderr[-3000:]
    ref, ref_w = losses(job["ref"]), weights(job["ref"])
    assert len(ref) == 5 and ref[-1] < ref[0] - 0.05  # it learns something in 5 steps
    for layout, out in zip(layouts, outs):
        np.testing.assert_allclose(losses(out), ref, rtol=REL, err_msg=str(layout))
        # the global gradient norm counts every parameter once, whatever the layout
        np.testing.assert_allclose(grad_norms(out), grad_norms(job["ref"]), rtol=1e-4,
                                   err_msg=str(layout))
        w = weights(out)
        for name, value in ref_w.items():
            np.testing.assert_allclose(w[name], value, rtol=0, atol=2e-4,
                                       err_msg=f"{layout} {name}")
        summary = json.loads((out / "summary.json").read_text())
        assert summary["world"] == n
        assert summary["final_valid_loss"] is not None
        check_breakdown(out, *layout)
        check_shard_sizes(out, job["model"], n, *layout)


def check_shard_sizes(out: Path, model: Path, n: int, tp: int, pp: int, dp: int,
                      extra: list[str]) -> None:
    """``check --json``'s parameters per rank of each stage are the sizes of the tensors in
    that rank's shard file (its flat buffer; the saved tensors plus any tied copy)."""
    import contextlib
    import io

    from safetensors import safe_open

    from fugaku_sim.cli import main
    from fugaku_sim.spec import load_model
    from fugaku_sim.tensors import tensor_table

    table = tensor_table(load_model(str(model)))
    text, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(err):
        status = main(["check", "--cluster", "local", "--model", str(model), "--json",
                       "--processes-per-node", str(n), *layout_args(tp, pp, dp), *extra])
    if status == 2 and "not modelled by the simulator" in err.getvalue():
        # a family the simulator does not model yet: the table's sums, which it will use
        from fugaku_sim.spec import Layout
        from fugaku_sim.tensors import parameters_by_stage

        layout = Layout(tp=tp, pp=pp, dp=dp, **virtual_stages(extra))
        per_stage = parameters_by_stage(table.model, layout)
    else:
        assert status == 0, err.getvalue()
        per_stage = json.loads(text.getvalue())["parameters_per_rank_by_stage"]
    assert len(per_stage) == pp
    final = sorted((out / "checkpoints").iterdir())[-1]
    zero3 = "--zero" in extra and extra[extra.index("--zero") + 1] == "3"
    seen = set()
    for path in sorted(final.glob("rank_*.safetensors")):
        with safe_open(str(path), "np") as f:
            meta = f.metadata()
            t, stage, d = json.loads(meta["coords"])
            seen.add((t, stage))
            flat = {name: end - start for name, start, end, _ in json.loads(meta["flat"])}
            assert sum(flat.values()) == per_stage[stage], path.name
            if zero3:  # every rank saves its shard of the flat weights
                assert f.get_slice("param_shard").get_shape()[0] == int(meta["padded"]) // dp
            elif d == 0:  # the tensors saved: all but a tied copy
                saved = {k[6:]: math.prod(f.get_slice(k).get_shape())
                         for k in f.keys() if k.startswith("param/")}  # noqa: SIM118
                assert saved == {k: v for k, v in flat.items() if table[k].tied_to is None}
    assert seen == {(t, p) for t in range(tp) for p in range(pp)}  # every rank of dp rank 0


def virtual_stages(extra: list[str]) -> dict[str, Any]:
    """The Layout fields of the interleaved schedule among the options ``extra``."""
    if "--virtual-stages" not in extra:
        return {}
    return {"schedule": "interleaved",
            "virtual_stages": int(extra[extra.index("--virtual-stages") + 1])}


def check_breakdown(out: Path, tp: int, pp: int, dp: int, extra: list[str]) -> None:
    """Each kind of communication is measured where the layout has it, and only there."""
    total = {k: 0.0 for k in ("tp_comm", "pp_comm", "dp_comm", "bubble", "recompute")}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        for k in total:
            total[k] += json.loads(line)["breakdown_s"][k]
    assert (total["tp_comm"] > 0) == (tp > 1)
    assert (total["bubble"] > 0) == (pp > 1)
    assert (total["dp_comm"] > 0) == (dp > 1)
    assert (total["recompute"] > 0) == ("--recompute" in extra)
    if "--zero" in extra:  # optimizer states sharded: every data-parallel rank saves a half
        from safetensors import safe_open

        final = sorted((out / "checkpoints").iterdir())[-1]
        sizes = set()
        for d in range(dp):
            with safe_open(str(final / f"rank_tp0_pp0_dp{d}.safetensors"), "np") as f:
                meta = f.metadata()
                sizes.add(f.get_slice("exp_avg").get_shape()[0])
                assert int(meta["padded"]) == dp * f.get_slice("exp_avg").get_shape()[0]
        assert len(sizes) == 1


def test_single_rank_run_writes_the_contract(job: dict[str, Any]) -> None:
    out = job["ref"]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    for r in records:
        assert tuple(r["breakdown_s"]) == BREAKDOWN_KEYS
        assert {"loss", "lr", "grad_norm", "tokens_per_s", "step_time_s"} <= set(r)
        assert sum(r["breakdown_s"].values()) <= r["step_time_s"] * 1.01
    assert [r["step"] for r in records if "val_loss" in r] == [3, 5]  # every 3 and the end
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps == ["step_0000002", "step_0000004", "step_0000005"]
    index = json.loads((out / "checkpoints/step_0000005/index.json").read_text())
    assert index["step"] == 5 and index["files"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["tokens"] == 5 * 8 * 8
    assert set(summary["breakdown_s_mean"]) == set(BREAKDOWN_KEYS)


def test_rank_zero_logs_a_line_per_step_and_tensorboard_events(job: dict[str, Any]) -> None:
    """A batch log (stderr not a terminal) gets one line per step, from rank 0 only, and the
    run's TensorBoard events hold the losses of metrics.jsonl."""
    out = job["root"] / "logged"
    base = [a for a in job["base"] if a != "--no-progress"]
    r = mpirun(2, [[*base, "--dp", "2", "--out", str(out)]])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("train: iteration ")]
    assert [line.split(" | ")[0] for line in lines] == [
        f"train: iteration {step}/5" for step in range(1, 6)]
    assert all("lm loss: " in line and "grad norm: " in line for line in lines)
    pytest.importorskip("tensorboardX")
    from fugaku_sim.train.events import read_scalars

    logged = [value for _, value in read_scalars(out)["loss/train"]]
    np.testing.assert_allclose(logged, losses(out), rtol=1e-6)  # float32 in the events


def test_layouts_of_two_ranks_match_one(job: dict[str, Any]) -> None:
    check_equivalent(job, 2, LAYOUTS_2)


def test_layouts_of_four_ranks_match_one(job: dict[str, Any]) -> None:
    check_equivalent(job, 4, LAYOUTS_4)


def test_untied_head_under_tensor_and_pipeline_parallelism(job: dict[str, Any]) -> None:
    """With untied embeddings the head is a tensor of its own (no sum between stages, its
    own initialisation, saved and consolidated): tp 2 x pp 2 gives the single-rank run."""
    root = job["root"]
    model = write_model(root / "untied.yaml", tied=False)
    base = [a if a != str(job["model"]) else str(model) for a in job["base"]]
    ref, out = root / "untied_ref", root / "untied_tp2_pp2"
    r = mpirun(1, [[*base, "--out", str(ref)]])
    assert r.returncode == 0, r.stderr[-3000:]
    r = mpirun(4, [[*base, *layout_args(2, 2, 1), "--out", str(out)]])
    assert r.returncode == 0, r.stderr[-3000:]
    np.testing.assert_allclose(losses(out), losses(ref), rtol=REL)
    np.testing.assert_allclose(grad_norms(out), grad_norms(ref), rtol=1e-4)
    ref_w, w = weights(ref), weights(out)
    assert not np.allclose(ref_w["lm_head.weight"], ref_w["transformer.wte.weight"])
    for name, value in ref_w.items():
        np.testing.assert_allclose(w[name], value, rtol=0, atol=2e-4, err_msg=name)
    check_shard_sizes(out, model, 4, 2, 2, 1, [])


# Llama-shaped: four query heads over two key/value heads, split over tp 2 and copied over
# tp 4; and one key/value head (multi-query, biases, tied embeddings) copied over tp 2 with
# ZeRO-2 and ZeRO-3 sharding the copies' gradients (and ZeRO-3 their weights)
LLAMA_LAYOUTS_2 = [
    (2, 1, 1, []),
    (1, 2, 1, []),
    (1, 1, 2, ["--zero", "1", "--overlap-grad-reduce", "--grad-bucket-mb", "0.002"]),
    (1, 1, 2, ["--zero", "3", "--recompute", "selective"]),
]
LLAMA_LAYOUTS_4 = [
    (4, 1, 1, []),
    (2, 2, 1, []),
    (1, 2, 2, ["--schedule", "interleaved", "--virtual-stages", "2", "--recompute", "all"]),
]
MQA_LAYOUTS_2 = [(2, 1, 1, [])]
MQA_LAYOUTS_4 = [
    (2, 1, 2, ["--zero", "2", "--overlap-grad-reduce", "--grad-bucket-mb", "0.002"]),
    (2, 1, 2, ["--zero", "3", "--recompute", "selective"]),
    (2, 2, 1, []),
]


@pytest.fixture(scope="module")
def llama_job(tmp_path_factory: pytest.TempPathFactory, job: dict[str, Any]
              ) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("llama")
    return start_job(root, write_llama_model(root / "llama.yaml"), job["data"])


@pytest.fixture(scope="module")
def mqa_job(tmp_path_factory: pytest.TempPathFactory, job: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mqa")
    model = write_llama_model(root / "mqa.yaml", kv_heads=1, bias=True, tied=True)
    return start_job(root, model, job["data"])


def test_llama_layouts_of_two_ranks_match_one(llama_job: dict[str, Any]) -> None:
    check_equivalent(llama_job, 2, LLAMA_LAYOUTS_2)


def test_llama_layouts_of_four_ranks_match_one(llama_job: dict[str, Any]) -> None:
    """Including tp 4 over two key/value heads: each held by two ranks, its gradient summed
    over them and counted once in the gradient norm."""
    check_equivalent(llama_job, 4, LLAMA_LAYOUTS_4)
    w = weights(llama_job["ref"])
    assert not np.allclose(w["lm_head.weight"], w["model.embed_tokens.weight"])


def test_multi_query_layouts_match_one(mqa_job: dict[str, Any]) -> None:
    check_equivalent(mqa_job, 2, MQA_LAYOUTS_2)
    check_equivalent(mqa_job, 4, MQA_LAYOUTS_4)


def test_llama_resume_reshards_copied_heads(llama_job: dict[str, Any]) -> None:
    """Killed after step 2's checkpoint at tp 4 (each key/value head held by two ranks),
    resumed at tp 2 x dp 2 with ZeRO-1 (heads split, optimizer states sharded): the
    single-rank run's losses."""
    out = llama_job["root"] / "killed_tp4"
    r = mpirun(4, [[*llama_job["base"], "--tp", "4", "--out", str(out), "--checkpoint-every",
                    "2", "--fail-at-step", "3"]])
    assert r.returncode != 0 and (out / "checkpoints/step_0000002").is_dir()
    r = mpirun(4, [[*llama_job["base"], *layout_args(2, 1, 2), "--zero", "1", "--out",
                    str(out)]])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 2
    np.testing.assert_allclose(losses(out), losses(llama_job["ref"]), rtol=REL)


def test_resume_is_exact_and_reshards(job: dict[str, Any]) -> None:
    """Killed after step 2's checkpoint: resuming gives the uninterrupted run bit for bit
    (same layout), and under other layouts the same losses within tolerance."""
    root, base = job["root"], job["base"]
    killed = root / "killed"
    r = mpirun(2, [[*base, "--pp", "2", "--out", str(killed), "--checkpoint-every", "2",
                    "--fail-at-step", "3"]])
    assert r.returncode != 0 and "injected fault at step 3" in r.stderr
    assert (killed / "checkpoints/step_0000002").is_dir()
    other = root / "killed_copy"
    shutil.copytree(killed, other)
    zero = root / "killed_zero"  # optimizer states sharded over dp = 2 when saved
    r = mpirun(2, [[*base, "--dp", "2", "--zero", "1", "--out", str(zero),
                    "--checkpoint-every", "2", "--fail-at-step", "3", "--fail-rank", "0"]])
    assert r.returncode != 0 and (zero / "checkpoints/step_0000002").is_dir()
    uninterrupted = root / "pp2"
    r = mpirun(2, [[*base, "--pp", "2", "--out", str(killed)],
                   [*base, "--pp", "2", "--out", str(uninterrupted)],
                   [*base, "--tp", "2", "--out", str(other)],
                   [*base, "--pp", "2", "--out", str(zero)]])
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = weights(killed), weights(uninterrupted)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert losses(killed) == losses(uninterrupted)
    assert json.loads((killed / "summary.json").read_text())["resumed_from_step"] == 2
    np.testing.assert_allclose(losses(other), losses(job["ref"]), rtol=REL)
    np.testing.assert_allclose(losses(zero), losses(job["ref"]), rtol=REL)


def test_a_chain_of_jobs_gives_the_uninterrupted_run(job: dict[str, Any]) -> None:
    """--steps-per-job 2 over 5 steps: three jobs, each resuming from the one before; the
    first two leave a checkpoint and no summary or release file; the chain's result is the
    uninterrupted run's bit for bit."""
    root, base = job["root"], job["base"]
    chained, whole = root / "chained", root / "whole"
    first = [*base, "--pp", "2", "--out", str(chained), "--steps-per-job", "2"]
    r = mpirun(2, [first])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stopped at step 2 of 5" in r.stdout
    assert (chained / "checkpoints/step_0000002").is_dir()
    assert not (chained / "summary.json").exists()
    assert not (chained / "model.safetensors").exists()
    r = mpirun(2, [first, first, [*base, "--pp", "2", "--out", str(whole)]])
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = weights(chained), weights(whole)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert losses(chained) == losses(whole)
    assert json.loads((chained / "summary.json").read_text())["resumed_from_step"] == 4


def test_corrupt_latest_checkpoint_falls_back(job: dict[str, Any]) -> None:
    out = job["root"] / "corrupt"
    shutil.copytree(job["ref"], out)
    (out / "model.safetensors").unlink()
    victim = next((out / "checkpoints/step_0000005").glob("*.safetensors"))
    blob = bytearray(victim.read_bytes())
    blob[-5] ^= 0xFF
    victim.write_bytes(bytes(blob))
    r = cli([*job["base"], "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert "step_0000005" in r.stderr and "sha256" in r.stderr and "step_0000004" in r.stderr
    a, b = weights(out), weights(job["ref"])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(losses(out)) == 5


@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_a_failing_rank_takes_the_job_down(job: dict[str, Any], mode: str) -> None:
    out = job["root"] / f"fault_{mode}"
    start = time.monotonic()
    r = mpirun(2, [[*job["base"], "--dp", "2", "--out", str(out), "--fail-at-step", "2",
                    "--fail-rank", "1", "--fail-mode", mode]], timeout=60)
    assert time.monotonic() - start < 30
    assert r.returncode != 0
    if mode == "raise":
        assert "fugaku-sim: error: rank 1: InjectedFault" in r.stderr


def assert_bad_input(r: subprocess.CompletedProcess[str], out: Path, *words: str) -> None:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error:"), r.stderr
    for w in words:
        assert w in lines[0]
    assert not out.exists()


@pytest.mark.hostile
def test_layout_must_match_the_rank_count(job: dict[str, Any]) -> None:
    out = job["root"] / "bad_world"
    r = mpirun(2, [[*job["base"], "--tp", "2", "--dp", "2", "--out", str(out)]])
    assert_bad_input(r, out, "4 ranks", "has 2")


@pytest.mark.hostile
@pytest.mark.parametrize(("args", "words"), [
    (["--tp", "3"], ["layout.tp", "heads"]),
    (["--pp", "3"], ["layout.pp", "layers"]),
    (["--global-batch", "6", "--micro-batch", "4"], ["train.global_batch"]),
    (["--precision", "bf16"], ["train.precision"]),
    (["--sequence-parallel"], ["layout.sequence_parallel", "layout.tp > 1"]),
])
def test_model_must_split(job: dict[str, Any], args: list[str], words: list[str]) -> None:
    out = job["root"] / "bad_split"
    assert_bad_input(cli([*job["base"], *args, "--out", str(out)]), out, *words)


@pytest.mark.hostile
def test_missing_shard(job: dict[str, Any]) -> None:
    data = job["root"] / "data_missing"
    shutil.copytree(job["data"], data)
    (data / "shards/en_train.bin").unlink()
    out = job["root"] / "bad_data"
    base = [a if a != str(job["data"]) else str(data) for a in job["base"]]
    assert_bad_input(cli([*base, "--out", str(out)]), out, "en_train.bin")


@pytest.mark.hostile
def test_checkpoint_of_another_model(job: dict[str, Any]) -> None:
    out = job["root"] / "other_model"
    shutil.copytree(job["ref"], out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    bigger = write_model(job["root"] / "model8.yaml", layers=8)
    base = [a if a != str(job["model"]) else str(bigger) for a in job["base"]]
    r = cli([*base, "--out", str(out)])
    assert r.returncode == 2 and "checkpoint is of model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.hostile
def test_out_that_is_a_file(job: dict[str, Any]) -> None:
    out = job["root"] / "out_is_a_file"
    out.write_text("keep me\n")
    r = cli([*job["base"], "--out", str(out)])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "is not a folder" in lines[0], r.stderr
    assert out.read_text() == "keep me\n"


@pytest.mark.hostile
def test_token_ids_outside_the_vocabulary(job: dict[str, Any]) -> None:
    """A shard of another tokenizer is refused on every rank before training (exit 2, not
    an MPI_Abort mid-run with an empty metrics log)."""
    from .helpers import write_shard

    data = job["root"] / "data_big_ids"
    shutil.copytree(job["data"], data)
    write_shard(data / "shards/en_train", [np.array([3, 4, 64, 2]), np.array([5, 2])])
    out = job["root"] / "bad_ids"
    base = [a if a != str(job["data"]) else str(data) for a in job["base"]]
    r = mpirun(2, [[*base, "--dp", "2", "--out", str(out)]], timeout=60)
    assert_bad_input(r, out, "token id 64", "model.vocab (64)")


@pytest.mark.hostile
@pytest.mark.parametrize("index", [
    {"files": []},
    {"files": {"rank_tp0_pp0_dp0.safetensors": "x"}},
    {"step": "two"},
    {"model": None},
])
def test_checkpoint_index_of_the_wrong_shape(job: dict[str, Any],
                                             index: dict[str, Any]) -> None:
    """Valid JSON of the wrong shape in the newest index: skipped like a corrupt checkpoint,
    and every rank goes on together (it used to raise on rank 0 alone: a hang)."""
    out = job["root"] / f"bad_index_{len(list(job['root'].iterdir()))}"
    shutil.copytree(job["ref"], out)
    newest = sorted((out / "checkpoints").iterdir())[-1]
    path = newest / "index.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **index}))
    start = time.monotonic()
    r = mpirun(2, [[*job["base"], "--dp", "2", "--out", str(out)]], timeout=60)
    assert time.monotonic() - start < 30
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipped corrupt checkpoint" in r.stderr and "corrupt checkpoint index" in r.stderr
