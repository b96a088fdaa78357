"""Files in and out: nothing half-written, and every bad read one line naming file and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.io import (
    atomic_dir,
    atomic_path,
    atomic_paths,
    load_json,
    read_json_lines,
    read_json_object,
    write_json,
)


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert load_json(target, "x") == {"a": 1}  # the old file, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_atomic_dir_replaces_a_folder_whole(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    with atomic_dir(folder) as tmp:
        (tmp / "old").write_text("1")
    with atomic_dir(folder) as tmp:
        (tmp / "new").write_text("2")
    assert sorted(p.name for p in folder.iterdir()) == ["new"]
    with pytest.raises(RuntimeError), atomic_dir(folder) as tmp:
        (tmp / "half").write_text("3")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    assert sorted(p.name for p in folder.iterdir()) == ["new"]


def test_a_failed_write_removes_the_folders_made_for_it(tmp_path: Path) -> None:
    """Outputs whose folders did not exist: a failure leaves no empty folder behind (a
    release folder and tarball under a new results/release/, a plot under a new folder),
    and keeps a folder that something else now lives in."""
    with pytest.raises(RuntimeError), atomic_paths([tmp_path / "a/b/rel", tmp_path / "a/b/rel.tgz",
                                                    tmp_path / "c/x.csv"]) as (d, f, c):
        d.mkdir()
        (d / "half").write_text("1")
        f.write_text("2")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep").mkdir()
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "keep/deep/x.json"):
        (tmp_path / "keep/deep/other").write_text("someone else's")
        raise RuntimeError("boom")
    assert [p.name for p in (tmp_path / "keep/deep").iterdir()] == ["other"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "--in x: no such file; run the stage"),
    (b"\xff\xfe", "--in x: not UTF-8 text (byte 0); run the stage"),
    (b"{1", "--in x: not valid JSON (Expecting property name"),
    (b"[1]", "--in x: expected a JSON object, found list; run the stage"),
])
def test_bad_json_file_is_one_line(tmp_path: Path, content: bytes | None,
                                   message: str) -> None:
    path = tmp_path / "x.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError) as info:
        read_json_object(path, "--in x", "run the stage")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="is a directory"):
        load_json(tmp_path, "--in x")


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2}\n[3]\n{"step": 4}\n{"st')
    with pytest.raises(UserError, match=r"log:4: not a JSON object; rerun"):
        read_json_lines(path, "log", "rerun")
    assert read_json_lines(path, "log", skip_bad=True) == [{"step": 1}, {"step": 2}, {"step": 4}]
    with pytest.raises(UserError, match="log: no such file"):
        read_json_lines(tmp_path / "none.jsonl", "log")
