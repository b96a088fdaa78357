"""Sources and the collect stage: files, URLs (local http.server), bad inputs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fugaku_sim.cli import main
from fugaku_sim.data.collect import run_collect
from fugaku_sim.data.config import DataConfig
from fugaku_sim.errors import UserError


def files_config(paths: list[str], **extra: object) -> DataConfig:
    return DataConfig.model_validate({
        "sources": [{"kind": "files", "name": "local", "paths": paths, "domain": "ja"}],
        "workers": 1, **extra})


def read_raw(out: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (out / "raw" / f"{name}.jsonl").read_text().splitlines()]


def test_files_txt_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("日本語の文書です。\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"body": "二つ目"}) + "\n\n" + json.dumps({"body": "三つ目"}) + "\n")
    cfg = DataConfig.model_validate({"sources": [
        {"kind": "files", "name": "t", "paths": [str(tmp_path / "a.txt")], "domain": "ja"},
        {"kind": "files", "name": "j", "paths": [str(tmp_path / "*.jsonl")], "domain": "ja",
         "text_field": "body", "licence": "CC0"}], "workers": 1})
    report = run_collect(cfg, tmp_path / "out")
    assert [r["text"] for r in read_raw(tmp_path / "out", "j")] == ["二つ目", "三つ目"]
    assert read_raw(tmp_path / "out", "t")[0]["domain"] == "ja"
    entry = report["sources"]["j"]
    assert entry["documents"] == 2 and entry["licence"] == "CC0"
    assert entry["bytes"] == len("二つ目三つ目".encode()) and len(entry["sha256"]) == 64


def test_byte_cap_limits_a_source(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"{i}.txt").write_text("x" * 1000)
    report = run_collect(files_config([str(tmp_path / "*.txt")], max_bytes_per_source=3500),
                         tmp_path / "out")
    assert report["sources"]["local"]["documents"] == 4


def test_byte_cap_stops_a_worker_pool_early_without_hanging(tmp_path: Path) -> None:
    # 200 files and 2 workers: the cap is reached after 4 files, with many more submitted
    for i in range(200):
        (tmp_path / f"{i}.txt").write_text("x" * 1000)
    cfg = files_config([str(tmp_path / "*.txt")], max_bytes_per_source=3500)
    report = run_collect(cfg.model_copy(update={"workers": 2}), tmp_path / "out")
    assert report["sources"]["local"]["documents"] == 4


@pytest.mark.hostile
def test_undecodable_bytes_fail_by_default(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes("ok 日本".encode() + b"\xff\xfe tail")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"bad\.txt: undecodable UTF-8 at byte 9.*on_undecodable"):
        run_collect(files_config([str(tmp_path / "bad.txt")]), out)
    assert not out.exists()  # nothing of the stage, not even its folder


def test_undecodable_bytes_replaced_and_counted(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe tail")
    cfg = files_config([str(tmp_path / "bad.txt")], on_undecodable="replace-and-count")
    report = run_collect(cfg, tmp_path / "out")
    assert report["sources"]["local"]["undecodable_bytes"] == 2
    assert read_raw(tmp_path / "out", "local")[0]["text"] == "ok \ufffd\ufffd tail"


@pytest.mark.hostile
def test_empty_source_is_a_user_error_with_no_output(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("  \n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="source local: no documents"):
        run_collect(files_config([str(tmp_path / "empty.txt")]), out)
    assert not out.exists()  # nothing of the stage, not even its folder


@pytest.mark.hostile
def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="matches no files"):
        run_collect(files_config([str(tmp_path / "*.none")]), tmp_path / "out")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def url_config(url: str, sha: str) -> DataConfig:
    return DataConfig.model_validate({"sources": [
        {"kind": "url", "name": "web", "url": url, "sha256": sha, "domain": "en"}],
        "workers": 1})


def test_url_source_checks_sha256(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    body = json.dumps({"text": "A served document."}) + "\n"
    (root / "c.jsonl").write_text(body)
    sha = hashlib.sha256(body.encode()).hexdigest()
    report = run_collect(url_config(f"{base}/c.jsonl", sha), tmp_path / "out")
    assert report["sources"]["web"]["sha256"] == sha
    assert read_raw(tmp_path / "out", "web")[0]["text"] == "A served document."


@pytest.mark.hostile
def test_url_checksum_mismatch_exits_2(http_root: tuple[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base, root = http_root
    (root / "c.txt").write_text("tampered text\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"sources": [
        {"kind": "url", "name": "web", "url": f"{base}/c.txt", "sha256": "0" * 64,
         "domain": "en"}]}))
    out = tmp_path / "out"
    assert main(["data", "collect", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    cache = tmp_path / "cache" / "url"
    assert not cache.exists() or list(cache.iterdir()) == []
