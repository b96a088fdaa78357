"""Hostile and careless data: source files and the files one data stage hands the next, each
spoiled, end ``fugaku-sim data <stage>`` with exit status 2 and one line naming the file (and
line), no traceback, and nothing of the stage written.

Before this suite most of the stage-to-stage cases were tracebacks from inside the stages or
their worker processes (JSONDecodeError, KeyError, UnicodeDecodeError, TypeError,
RecursionError, sentencepiece's RuntimeError, gzip's EOFError), and a gzip "bomb" of 3 MB was
read into 3 GB of memory for minutes.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from data_corpus import small_config

from fugaku_sim.data.pipeline import run_all

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every stage's output for a small config, and that config as a JSON file."""
    root = tmp_path_factory.mktemp("hostile_data")
    cfg = small_config(root)
    config = root / "cfg.json"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    run_all(cfg, root / "out", quiet=True)
    return root / "out", config


def _source_config(tmp: Path, path: Path, **source: object) -> Path:
    config = {"sources": [{"kind": "files", "name": "local", "paths": [str(path)],
                           "domain": "en", **source}], "workers": 1}
    (tmp / "cfg.json").write_text(json.dumps(config))
    return tmp / "cfg.json"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gzip_bomb(path: Path) -> Path:
    """Half a megabyte of gzip that decompresses to 640 MiB (beyond the 512 MiB a file may
    hold): one member of 64 MiB of one byte, ten times (gzip allows members back to back)."""
    member = gzip.compress(b"a" * 2**26, compresslevel=9)
    path.write_bytes(member * 10)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


#: collect: (the --config to give, from a scratch folder; words of the one line)
COLLECT_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a JSON-lines source nested beyond the parser": (
        lambda t: _source_config(t, _write(t / "deep.jsonl", b'{"text": ' + b"[" * 100000
                                           + b"]" * 100000 + b"}\n")),
        "deep.jsonl:1: not valid JSON"),
    "a JSON-lines source without its text field": (
        lambda t: _source_config(t, _write(t / "n.jsonl", b'{"body": "x"}\n')),
        "n.jsonl:1: no string field 'text'; set text_field in the source"),
    "a gzip file cut short": (
        lambda t: _source_config(t, _write(t / "g.txt.gz", b"\x1f\x8b\x08garbage")),
        "g.txt.gz: not a whole gzip file"),
    "a gzip bomb": (lambda t: _source_config(t, _gzip_bomb(t / "b.txt.gz")),
                    "b.txt.gz: decompresses to more than 512 MiB"),
    "a named pipe as the only source file": (
        lambda t: _source_config(t, _fifo(t / "p.txt")),
        "source local: paths match no regular files"),
    "a config nested beyond any setting": (
        lambda t: _write(t / "deep.json", b"[" * 100000 + b"]" * 100000),
        "nested deeper than 32 levels"),
    "a config that is a JSON list": (lambda t: _write(t / "list.json", b"[1]"),
                                     "data: expected a mapping of settings"),
}


@pytest.mark.parametrize("name", list(COLLECT_CASES))
def test_a_bad_source_is_one_line(name: str, tmp_path: Path, run_cli,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_config, words = COLLECT_CASES[name]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = make_config(scratch)
    out = tmp_path / "out"
    monkeypatch.setenv("FUGAKU_SIM_CACHE", str(tmp_path / "cache"))
    status, _, err = run_cli("data", "collect", "--config", str(config), "--out", str(out),
                             "--quiet")
    _assert_one_line(status, err, words)
    assert not out.exists()


def _replace_line(path: Path, line: bytes, append: bool = False) -> None:
    path.write_bytes((path.read_bytes() if append else b"") + line + b"\n")


def _edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


#: later stages: (stage run, spoil(out folder), words of the one line)
STAGE_CASES: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "a raw line cut in half": (
        "clean", lambda o: _replace_line(o / "raw/ja-files.jsonl", b'{"id": "x", "te', True),
        "raw/ja-files.jsonl:61: not a JSON object; rerun `fugaku-sim data collect`"),
    "a raw record without its text": (
        "clean", lambda o: _replace_line(o / "raw/ja-files.jsonl",
                                         b'{"id": "a", "source": "ja-files", "domain": "ja"}'),
        "raw/ja-files.jsonl:1: no text field 'text'"),
    "a raw line in Latin-1": (
        "clean", lambda o: _replace_line(o / "raw/ja-files.jsonl", b'{"text": "caf\xe9"}'),
        "raw/ja-files.jsonl:1: not UTF-8 text (byte 13)"),
    "a raw report that is a list": (
        "clean", lambda o: (o / "raw/report.json").write_text("[]"),
        "raw/report.json: not a JSON object; rerun `fugaku-sim data collect`"),
    "a raw report naming a source outside raw/": (
        "clean", lambda o: _edit_json(o / "raw/report.json",
                                      lambda r: r["sources"].update({"../../x": {}})),
        "source name '../../x' is not a file name"),
    "a cleaned text that is a number": (
        "dedup", lambda o: _replace_line(o / "clean/ja-files.jsonl",
                                         b'{"id": "a", "source": "s", "domain": "ja", "text": 5}'),
        "clean/ja-files.jsonl:1: no text field 'text'; rerun `fugaku-sim data clean`"),
    "a cleaned document of an unknown domain": (
        "dedup", lambda o: _replace_line(o / "clean/ja-files.jsonl",
                                         b'{"id": "a", "source": "s", "domain": "fr", '
                                         b'"text": "bonjour"}'),
        "domain 'fr' is not one of ja, en, code, maths"),
    "a deduplicated line that is not JSON": (
        "tokenizer", lambda o: _replace_line(o / "dedup/ja_train.jsonl", b"oops"),
        "dedup/ja_train.jsonl:1: not a JSON object; rerun `fugaku-sim data dedup`"),
    "a tokenizer model that is not sentencepiece": (
        "tokenize", lambda o: (o / "tokenizer.model").write_bytes(b"garbage"),
        "tokenizer.model: not a sentencepiece model"),
    "a tokenizer report whose vocabulary is a word": (
        "tokenize", lambda o: _edit_json(o / "tokenizer/report.json",
                                         lambda r: r.update(vocab_size="big")),
        "vocab_size 'big' is not a count"),
    "a deduplicated line nested beyond the parser": (
        "tokenize", lambda o: _replace_line(o / "dedup/ja_train.jsonl",
                                            b'{"text": ' + b"[" * 100000 + b"]" * 100000 + b"}"),
        "dedup/ja_train.jsonl (the line at byte 0): not a JSON object"),
    "the tokenized datasets gone": (
        "mix", lambda o: shutil.rmtree(o / "tokenized", ignore_errors=True),
        "tokenized/report.json: no such file; run `fugaku-sim data tokenize` first"),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", list(STAGE_CASES))
def test_a_spoiled_stage_output_is_one_line_for_the_next(
        name: str, built: tuple[Path, Path], tmp_path: Path, run_cli) -> None:
    stage, spoil, words = STAGE_CASES[name]
    ref, config = built
    out = Path(shutil.copytree(ref, tmp_path / "out"))
    spoil(out)
    before = _snapshot(out)
    status, _, err = run_cli("data", stage, "--config", str(config), "--out", str(out),
                             "--quiet")
    _assert_one_line(status, err, words)
    assert _snapshot(out) == before  # the stage's output is all or nothing


def _assert_one_line(status: int, err: str, words: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error: "), err[-2000:]
    assert "Traceback" not in err and words in lines[0], lines[0]
