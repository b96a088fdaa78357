"""Hostile and careless releases and release inputs: ``release verify`` of a spoiled release and
``release build`` from spoiled inputs each end with exit status 2 and one line naming the file,
no traceback, and nothing written.

"Resigned" cases rewrite SHA256SUMS after spoiling a file, as a user who "repairs" a release
would, so that the checksums pass and only the contents are wrong. Before this suite a pipe
inside a release, a ``generation_config.json`` that is not JSON or names another end of
document, held-out texts that are not UTF-8 (a traceback) and a licence id holding a newline
(a second line in the model card's front matter) all passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.release.checksums import write_checksums

pytestmark = pytest.mark.hostile

Spoil = Callable[[Path], object]


def resign(release: Path) -> None:
    """SHA256SUMS rewritten for every file the release now holds."""
    names = [p.relative_to(release).as_posix() for p in sorted(release.rglob("*"))
             if p.is_file() and p.name != "SHA256SUMS"]
    write_checksums(release, names)


def resigned(spoil: Spoil) -> Spoil:
    return lambda release: (spoil(release), resign(release))


def _json(path: Path, edit: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _weights(release: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    from safetensors.numpy import save_file

    from fugaku_sim.tensors.consolidated import read_safetensors

    meta, tensors = read_safetensors(release / "model.safetensors")
    first = sorted(tensors)[0]
    tensors[first] = change(tensors[first])
    save_file(tensors, str(release / "model.safetensors"), metadata=meta)


def _replace_by_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


#: spoiled releases: (spoil(release folder), words of the one line)
VERIFY_CASES: dict[str, tuple[Spoil, str]] = {
    # SHA256SUMS itself
    "a checksum of a file above the release": (
        lambda r: _append(r / "SHA256SUMS", b"0" * 64 + b"  ../x\n"),
        "path '../x' leaves the release directory"),
    "a file listed twice": (
        lambda r: _append(r / "SHA256SUMS", (r / "SHA256SUMS").read_bytes().split(b"\n")[0] + b"\n"),
        "listed twice"),
    "checksums in Latin-1": (lambda r: _append(r / "SHA256SUMS", b"caf\xe9\n"), "not UTF-8 text"),
    "checksums emptied": (lambda r: (r / "SHA256SUMS").write_text(""), "not listed in SHA256SUMS"),
    "checksums replaced by a folder": (lambda r: _replace_by_folder(r / "SHA256SUMS"),
                                       "SHA256SUMS: required release file missing"),
    # config.json
    "a config that is not JSON, resigned": (
        resigned(lambda r: (r / "config.json").write_text("{")), "config.json: not valid JSON"),
    "a config of another model type, resigned": (
        resigned(lambda r: _json(r / "config.json", lambda c: c.update(model_type="bert"))),
        "model_type is 'bert'"),
    "a boolean layer count, resigned": (
        resigned(lambda r: _json(r / "config.json", lambda c: c.update(n_layer=True))),
        "field n_layer must be an integer"),
    "a vocabulary beyond any model, resigned": (
        resigned(lambda r: _json(r / "config.json", lambda c: c.update(vocab_size=10**12))),
        "not a valid model (model.vocab: Input should be less than or equal to"),
    # the weights
    "NaN weights, resigned": (resigned(lambda r: _weights(r, lambda a: np.full_like(a, np.nan))),
                              "holds NaN or infinite values"),
    "integer weights, resigned": (resigned(lambda r: _weights(r, lambda a: a.astype(np.int32))),
                                  "has dtype int32, expected floating point"),
    "weights whose header is garbage, resigned": (
        resigned(lambda r: (r / "model.safetensors").write_bytes(b"\xff" * 40)),
        "model.safetensors: cannot read consolidated checkpoint"),
    # the tokenizer files
    "a tokenizer that is not sentencepiece, resigned": (
        resigned(lambda r: (r / "tokenizer.model").write_bytes(b"not a model")),
        "tokenizer.model: not a sentencepiece model"),
    "tokenizer.json a JSON list, resigned": (
        resigned(lambda r: (r / "tokenizer.json").write_text("[]")),
        "tokenizer.json: expected a JSON object, found list"),
    "a tokenizer config unlike its conversion, resigned": (
        resigned(lambda r: _json(r / "tokenizer_config.json",
                                 lambda c: c.update(model_max_length="x"))),
        "differs from what tokenizer.model converts to (in model_max_length)"),
    # generation_config.json, the model card, eval.json
    "a generation config that is not JSON, resigned": (
        resigned(lambda r: (r / "generation_config.json").write_text("{")),
        "generation_config.json: not valid JSON"),
    "a generation config ending on another token, resigned": (
        resigned(lambda r: _json(r / "generation_config.json",
                                 lambda c: c.update(eos_token_id=99999))),
        "generation_config.json: eos_token_id is 99999, config.json's tokens give 2"),
    "a generation config at temperature zero, resigned": (
        resigned(lambda r: _json(r / "generation_config.json", lambda c: c.update(temperature=0))),
        "generation_config.json: temperature is 0"),
    "a model card without front matter, resigned": (
        resigned(lambda r: (r / "README.md").write_text("# a model\n")), "no YAML front matter"),
    "a model card replaced by a folder": (lambda r: _replace_by_folder(r / "README.md"),
                                          "README.md: required release file missing"),
    "eval.json that is not JSON, resigned": (
        resigned(lambda r: (r / "eval.json").write_text("nope")), "eval.json: not valid JSON"),
    # what else a folder may hold
    "a named pipe inside the release": (lambda r: os.mkfifo(r / "pipe"),
                                        "pipe: a pipe, socket or device"),
    "an unlisted file in a subfolder": (
        lambda r: ((r / "extra").mkdir(), (r / "extra" / "notes.txt").write_text("x")),
        "extra/notes.txt: not listed in SHA256SUMS"),
    "an emptied release": (lambda r: [p.unlink() for p in list(r.iterdir())],
                           "required release file missing"),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<other>"
            for p in sorted(root.rglob("*"))}


def _one_line_exit_2(run_cli: Callable[..., tuple[int, str, str]], words: str,
                     *argv: str) -> None:
    status, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert status == 2, (status, out[-500:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error: "), err[-2000:]
    assert "Traceback" not in err and words in lines[0], lines[0]


@pytest.mark.parametrize("name", list(VERIFY_CASES))
def test_a_spoiled_release_fails_verify_in_one_line(name: str, release_copy: Path, run_cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spoil, words = VERIFY_CASES[name]
    spoil(release_copy)
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")
    before = _snapshot(release_copy)
    _one_line_exit_2(run_cli, words, "release", "verify", str(release_copy))
    assert _snapshot(release_copy) == before


# --------------------------------------------------------------------------- release build


def _copy_data(inputs: dict[str, Path], tmp: Path) -> Path:
    import shutil

    return Path(shutil.copytree(inputs["data"], tmp / "data"))


def _heldout_latin1(data: Path) -> None:
    for path in (data / "heldout").iterdir():
        path.write_bytes(b'{"text": "caf\xe9"}\n')


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "model.safetensors")
    return tmp / "model.safetensors"


def _file(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text(text)
    return tmp / name


#: bad inputs of a build: (options given the inputs and a scratch folder, words of the line)
Options = Callable[[dict[str, Path], Path], dict[str, str]]
BUILD_CASES: dict[str, tuple[Options, str]] = {
    "a folder for the checkpoint": (lambda i, t: {"--checkpoint": str(i["root"])},
                                    "is a directory, not a consolidated checkpoint"),
    "a pipe for the checkpoint": (lambda i, t: {"--checkpoint": str(_fifo(t))},
                                  "not a regular file (a device, pipe or socket)"),
    "data without its tokenizer": (
        lambda i, t: {"--data": str(_spoil_data(i, t, lambda d: (d / "tokenizer.model")
                                                .unlink()))}, "tokenizer not found"),
    "a tokenizer that is not sentencepiece": (
        lambda i, t: {"--data": str(_spoil_data(i, t, lambda d: (d / "tokenizer.model")
                                                .write_bytes(b"xx")))},
        "not a sentencepiece model"),
    "a manifest that is not JSON": (
        lambda i, t: {"--data": str(_spoil_data(i, t, lambda d: (d / "manifest.json")
                                                .write_text("[1,")))},
        "manifest.json: not valid JSON"),
    "held-out texts in Latin-1": (
        lambda i, t: {"--data": str(_spoil_data(i, t, _heldout_latin1))}, "not UTF-8 text"),
    "a training summary that is a JSON list": (
        lambda i, t: {"--train": str(_file(t, "train/summary.json", "[]").parent)},
        "training summary: expected a JSON object, found list"),
    "a comparison that is a JSON list": (
        lambda i, t: {"--compare": str(_file(t, "compare.json", "[1, 2]"))},
        "predicted-vs-measured comparison: expected a JSON object"),
    "a licence id holding a newline": (lambda i, t: {"--license": "mit\n---\nx: 1"},
                                       "--license 'mit\\n---\\nx: 1': give a licence id"),
}


def _spoil_data(inputs: dict[str, Path], tmp: Path, spoil: Callable[[Path], object]) -> Path:
    data = _copy_data(inputs, tmp)
    spoil(data)
    return data


@pytest.mark.parametrize("name", list(BUILD_CASES))
def test_a_build_from_bad_inputs_fails_in_one_line(name: str, rel_inputs: dict[str, Path],
                                                   tmp_path: Path, run_cli,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    options, words = BUILD_CASES[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = {"--checkpoint": str(rel_inputs["checkpoint"]), "--data": str(rel_inputs["data"]),
            "--eval": str(rel_inputs["eval"]), "--train": str(tmp_path / "no-train"),
            "--out": str(tmp_path / "out")}
    argv.update(options(rel_inputs, scratch))
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")
    before = _snapshot(tmp_path)
    _one_line_exit_2(run_cli, words, "release", "build",
                     *[word for pair in argv.items() for word in pair])
    assert _snapshot(tmp_path) == before  # no release folder, no tarball, no temporary
