"""Every kind of file the trainer reads, corrupted, under ``mpiexec -n 2``: the job ends
with exit status 2 and one line naming the file within 30 s, on every rank (never a hang in
a collective, never ``MPI_Abort`` or a traceback), and writes nothing.

The kinds: the checkpoint index, a checkpoint's rank file (its weights), its optimizer
state, the token shards (``.idx``/``.bin``) and the blend file. A checkpoint case corrupts
the only checkpoint of a run, so there is none to fall back to; "resigned" cases also
rewrite the index's sha256 and size, as a user who "repairs" a checkpoint would, so that
only the contents are wrong. Each case is one hostile-input case (see
tests/commands/test_hostile.py for how the suite counts them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .helpers import write_data, write_model, write_shard
from .mpi_job import MPIEXEC, REPO, env

pytestmark = [pytest.mark.mpi, pytest.mark.hostile,
              pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec")]

#: the bar: the whole job, every rank, ends within this many seconds
RANK_EXIT_S = 30
RANK = "rank_tp0_pp0_dp{}.safetensors"  # ZeRO-1 over dp 2: both ranks save optimizer shards


def mpirun_bounded(args: list[str]) -> tuple[int, str, float]:
    """``mpiexec -n 2 fugaku-sim <args>`` in its own process group, killed whole after
    :data:`RANK_EXIT_S` (a rank left waiting in a collective would otherwise outlive the
    test); returns (status, stderr, seconds)."""
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "fugaku_sim.cli", *args]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(), cwd=REPO, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=RANK_EXIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the job did not end within {RANK_EXIT_S} s: a rank hangs")
    return proc.returncode, err, time.monotonic() - start


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data, a model and a 2-step run of it whose only checkpoint (step 2) the cases spoil."""
    root = tmp_path_factory.mktemp("hostile_files")
    data, model = write_data(root / "data"), write_model(root / "model.yaml")
    ref = root / "ref"
    status, err, _ = mpirun_bounded([*_train(model, data, ref), "--steps", "2"])
    assert status == 0, err
    return {"root": root, "data": data, "model": model, "ref": ref}


def _train(model: Path, data: Path, out: Path) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out),
            "--dp", "2", "--zero", "1", "--no-progress"]


# --------------------------------------------------------------------------- spoiling files


def _resign(step: Path, name: str) -> None:
    """Rewrite the index's sha256 and size of ``name`` to match its new contents."""
    index = json.loads((step / "index.json").read_text())
    data = (step / name).read_bytes()
    index["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (step / "index.json").write_text(json.dumps(index))


def _rewrite(step: Path, name: str, edit: Callable[[dict[str, str], dict[str, Any]], None]
             ) -> None:
    """Rewrite a rank file with ``edit(metadata, tensors)`` applied, then resign it."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(step / name), framework="np") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    edit(meta, tensors)
    save_file(tensors, str(step / name), metadata=meta)
    _resign(step, name)


def _edit_index(step: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    index = json.loads((step / "index.json").read_text())
    edit(index)
    (step / "index.json").write_text(json.dumps(index))


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _first_param(tensors: dict[str, Any]) -> str:
    return next(k for k in sorted(tensors) if k.startswith("param/"))


def _nan_weight(meta: dict[str, str], tensors: dict[str, Any]) -> None:
    key = _first_param(tensors)
    tensors[key] = np.full_like(tensors[key], np.nan)


def _other_model_file(step: Path, root: Path) -> None:
    """Rank 0's file replaced by a well-formed one of a model with 8 layers (resigned)."""
    from fugaku_sim.spec import load_model
    from fugaku_sim.tensors import tensor_table
    from fugaku_sim.train import checkpoint as ckpt

    model = load_model(str(write_model(root / "model8.yaml", layers=8)))
    table = tensor_table(model)
    params = {r.name: np.zeros(r.shape, np.float32) for r in table if r.tied_to is None}
    flat, pos = [], 0
    for name, value in params.items():
        flat.append((name, pos, pos + value.size, value.shape))
        pos += value.size
    (step / RANK.format(0)).unlink()
    ckpt.write_rank_file(step, ckpt.RankState(0, 0, 0, flat, pos, params, [(0, pos)], None,
                                              None))
    _resign(step, RANK.format(0))


#: the checkpoint kinds: (spoil(step folder, root), words of the one line)
CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    # the index
    "index cut short": (lambda s, r: (s / "index.json").write_text('{"format": "fugaku-s'),
                        "checkpoint index: not valid JSON"),
    "index of another format": (lambda s, r: _edit_index(s, lambda i: i.update(format="zip")),
                                "not a fugaku-sim checkpoint"),
    "index naming a file outside the checkpoint": (
        lambda s, r: _edit_index(s, lambda i: i["files"].update(
            {"../../model.yaml": {"sha256": "0" * 64, "bytes": 1}})),
        "'../../model.yaml' is not a file of the checkpoint"),
    "index with a negative step": (lambda s, r: _edit_index(s, lambda i: i.update(step=-3)),
                                   "step is not a whole number >= 0"),
    "index deleted": (lambda s, r: (s / "index.json").unlink(), "checkpoint index: no such file"),
    # the rank files: weights
    "rank file with a flipped byte": (lambda s, r: _flip_byte(s / RANK.format(0), -9),
                                      "fails its sha256 check"),
    "rank file missing": (lambda s, r: (s / RANK.format(1)).unlink(), "is missing"),
    "rank file header garbled, resigned": (
        lambda s, r: (_flip_byte(s / RANK.format(0), 9), _resign(s, RANK.format(0))),
        "cannot read checkpoint rank file"),
    "rank file without its layout metadata, resigned": (
        lambda s, r: _rewrite(s, RANK.format(0), lambda m, t: m.pop("flat")),
        "corrupt rank file (no 'flat' in its metadata)"),
    "rank file with coordinates that are not numbers, resigned": (
        lambda s, r: _rewrite(s, RANK.format(0), lambda m, t: m.update(coords='["a", 0, 0]')),
        "corrupt rank file (metadata: 'a' is not a whole number"),
    "rank file missing a weight, resigned": (
        lambda s, r: _rewrite(s, RANK.format(0), lambda m, t: t.pop(_first_param(t))),
        "weights: does not match model"),
    "rank file with NaN weights, resigned": (
        lambda s, r: _rewrite(s, RANK.format(0), _nan_weight), "holds NaN or infinite values"),
    "rank file of another model, resigned": (_other_model_file, "do not fit together"),
    # the rank files: optimizer state
    "optimizer state shorter than its ranges, resigned": (
        lambda s, r: _rewrite(s, RANK.format(1), lambda m, t: t.update(exp_avg=t["exp_avg"][:5])),
        "exp_avg holds 5 values"),
    "optimizer state of NaN, resigned": (
        lambda s, r: _rewrite(s, RANK.format(1), lambda m, t: t.update(
            exp_avg_sq=np.full_like(t["exp_avg_sq"], np.nan))),
        "optimizer state exp_avg_sq: tensor"),
    "optimizer second moments below zero, resigned": (
        lambda s, r: _rewrite(s, RANK.format(1), lambda m, t: t.update(
            exp_avg_sq=-np.ones_like(t["exp_avg_sq"]))),
        "holds negative values"),
    "optimizer ranges beyond the buffer, resigned": (
        lambda s, r: _rewrite(s, RANK.format(1), lambda m, t: m.update(owned="[[0, 99999999]]")),
        "owned range (0, 99999999) outside the buffer"),
}


def _shard(data: Path, name: str = "en_train") -> Path:
    return data / "shards" / name


def _idx_byte(data: Path, at: int, value: bytes) -> None:
    path = _shard(data).with_suffix(".idx")
    raw = bytearray(path.read_bytes())
    raw[at:at + len(value)] = value
    path.write_bytes(bytes(raw))


def _blend(data: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    blend = json.loads((data / "blend.json").read_text())
    edit(blend)
    (data / "blend.json").write_text(json.dumps(blend))


def _replace_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


#: the data kinds: (spoil(data folder), words of the one line)
DATA_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # token shards
    "token data cut short": (
        lambda d: _shard(d).with_suffix(".bin").write_bytes(
            _shard(d).with_suffix(".bin").read_bytes()[:100]), "truncated or corrupt data file"),
    "token index of zeros": (lambda d: _shard(d).with_suffix(".idx").write_bytes(b"\0" * 64),
                             "not a Megatron MMIDIDX index"),
    "token index cut short": (
        lambda d: _shard(d).with_suffix(".idx").write_bytes(
            _shard(d).with_suffix(".idx").read_bytes()[:40]), "truncated or corrupt index"),
    "token index of an unknown dtype": (lambda d: _idx_byte(d, 17, b"\x63"),
                                        "unknown dtype code 99"),
    "token index claiming 2^60 sequences": (lambda d: _idx_byte(d, 18, struct.pack("<q", 2**60)),
                                            "header implies"),
    "token index of another dtype than its data": (lambda d: _idx_byte(d, 17, b"\x07"),
                                                   "sequence pointers do not follow lengths"),
    "token ids below zero": (
        lambda d: _negative_ids(_shard(d)), "holds token id -5, outside model.vocab"),
    "token shard of empty documents only": (
        lambda d: write_shard(_shard(d), [np.array([], np.uint16)]), "holds 0 tokens"),
    "token data replaced by a folder": (
        lambda d: _replace_dir(_shard(d, "ja_valid").with_suffix(".bin")), "ja_valid.bin"),
    # the blend
    "blend not JSON": (lambda d: (d / "blend.json").write_text("{"), "blend.json: not valid JSON"),
    "blend a JSON list": (lambda d: (d / "blend.json").write_text("[]"),
                          "expected a JSON object, found list"),
    "blend with a negative weight": (
        lambda d: _blend(d, lambda b: b["splits"]["train"][0].update(weight=-1)),
        "splits.train.0.weight: Input should be greater than or equal to 0"),
    "blend whose weights are all zero": (
        lambda d: _blend(d, lambda b: [e.update(weight=0) for e in b["splits"]["train"]]),
        "splits.train: needs a positive weight"),
    "blend naming a shard that is not there": (
        lambda d: _blend(d, lambda b: b["splits"]["train"][0].update(prefix="shards/xx_train")),
        "xx_train.idx"),
    "blend of a larger vocabulary than the model": (
        lambda d: _blend(d, lambda b: b.update(vocab_size=50000)),
        "the tokenizer's vocabulary (50000) exceeds model.vocab (64)"),
    "blend without a train split": (lambda d: _blend(d, lambda b: b["splits"].pop("train")),
                                    "the blend file lists no train shards"),
    "blend replaced by a folder": (lambda d: _replace_dir(d / "blend.json"), "is a directory"),
}


def _negative_ids(prefix: Path) -> None:
    from fugaku_sim.data.indexed import IndexedDatasetWriter

    with IndexedDatasetWriter(prefix, np.int32) as writer:
        for _ in range(30):
            writer.add_document(np.array([3, -5, 7, 2], np.int32))


def _assert_one_line_exit_2(status: int, err: str, seconds: float, words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error: "), err[-3000:]
    assert words in lines[0], lines[0]
    assert seconds < RANK_EXIT_S


@pytest.mark.parametrize("name", list(CHECKPOINT_CASES))
def test_a_spoiled_checkpoint_ends_every_rank_with_one_line(run: dict[str, Path],
                                                            name: str) -> None:
    spoil, words = CHECKPOINT_CASES[name]
    out = run["root"] / name.replace(" ", "_").replace(",", "")
    shutil.copytree(run["ref"], out)
    step = out / "checkpoints" / "step_0000002"
    spoil(step, run["root"])
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    status, err, seconds = mpirun_bounded([*_train(run["model"], run["data"], out),
                                           "--steps", "4"])
    _assert_one_line_exit_2(status, err, seconds, words)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_spoiled_data_ends_every_rank_with_one_line(run: dict[str, Path], name: str) -> None:
    spoil, words = DATA_CASES[name]
    data = run["root"] / ("data_" + name.replace(" ", "_").replace("^", ""))
    shutil.copytree(run["data"], data)
    spoil(data)
    out = run["root"] / ("out_" + data.name)
    status, err, seconds = mpirun_bounded(_train(run["model"], data, out))
    _assert_one_line_exit_2(status, err, seconds, words)
    assert not out.exists()
