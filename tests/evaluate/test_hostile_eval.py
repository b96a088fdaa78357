"""Hostile and careless evaluation inputs: a spoiled checkpoint or data folder ends
``fugaku-sim evaluate`` with exit status 2 and one line naming the file, no traceback, and no
eval.json or eval.md. Before this suite a test shard holding ids beyond the tokenizer's
vocabulary ended in sentencepiece's IndexError (a traceback).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.tensors.consolidated import write_consolidated
from tests.evaluate.synthetic import random_params

pytestmark = pytest.mark.hostile

FAST = ["--max-docs", "4", "--choice-items", "3", "--max-problems", "3",
        "--max-new-tokens", "3"]


@pytest.fixture(scope="module")
def checkpoint(tiny_spec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    write_consolidated(path, tiny_spec, random_params(tiny_spec, seed=9))
    return path


def _spec_metadata(checkpoint: Path, tmp: Path, text: str) -> Path:
    """A copy of ``checkpoint`` whose ``model_spec`` metadata is ``text``."""
    from safetensors.numpy import save_file

    from fugaku_sim.tensors.consolidated import read_safetensors

    meta, tensors = read_safetensors(checkpoint)
    meta["model_spec"] = text
    save_file(tensors, str(tmp / "edited.safetensors"), metadata=meta)
    return tmp / "edited.safetensors"


def _data(tiny_data: Path, tmp: Path, spoil: Callable[[Path], object]) -> Path:
    data = Path(shutil.copytree(tiny_data, tmp / "data"))
    spoil(data)
    return data


def _foreign_ids(data: Path) -> None:
    from fugaku_sim.data.indexed import IndexedDatasetWriter

    with IndexedDatasetWriter(data / "shards" / "ja_test", np.int32) as writer:
        for _ in range(5):
            writer.add_document(np.array([3, 99999, 7, 2], np.int32))


def _blend(data: Path, **update: object) -> None:
    blend = json.loads((data / "blend.json").read_text())
    blend.update(update)
    (data / "blend.json").write_text(json.dumps(blend))


#: (options given the checkpoint, data folder and a scratch folder; words of the one line)
Options = Callable[[Path, Path, Path], list[str]]
CASES: dict[str, tuple[Options, str]] = {
    "arithmetic lines that are not JSON": (
        lambda c, d, t: ["--data", str(_data(d, t, lambda x: (x / "maths_eval.jsonl")
                                             .write_text("1 + 1 = 2\n")))],
        "maths_eval.jsonl:1: not a JSON object"),
    "an arithmetic answer given as a number": (
        lambda c, d, t: ["--data", str(_data(d, t, lambda x: (x / "maths_eval.jsonl").write_text(
            '{"prompt": "1 + 1 =", "answer": 2}\n')))],
        "maths_eval.jsonl:1: needs string fields prompt, answer"),
    "test shards of another tokenizer": (
        lambda c, d, t: ["--data", str(_data(d, t, _foreign_ids))],
        "holds token id 99999, outside the tokenizer's vocabulary (400)"),
    "an end-of-document id beyond the vocabulary": (
        lambda c, d, t: ["--data", str(_data(d, t, lambda x: _blend(x, eod_id=100000)))],
        "end-of-document id 100000 outside the vocabulary of 400"),
    "checkpoint spec metadata that is not JSON": (
        lambda c, d, t: ["--checkpoint", str(_spec_metadata(c, t, "{not json"))],
        "invalid 'model_spec' metadata (model: Invalid JSON"),
    "a folder that is no release": (
        lambda c, d, t: ["--release", str(t)], "config.json: no such file"),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_evaluation_input_is_one_line_and_writes_nothing(
        name: str, checkpoint: Path, tiny_data: Path, tmp_path: Path, run_cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    options, words = CASES[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    chosen = options(checkpoint, tiny_data, scratch)
    argv = ["--data", str(tiny_data), "--out", str(tmp_path / "eval")]
    if "--release" not in chosen:
        argv = ["--checkpoint", str(checkpoint), *argv]
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")
    before = _snapshot(tmp_path)
    status, out, err = run_cli("evaluate", *argv, *chosen, *FAST)  # argparse: the last wins
    lines = err.strip().splitlines()
    assert status == 2, (status, out[-500:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error: "), err[-2000:]
    assert "Traceback" not in err and words in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # no eval.json, no eval.md
