"""Machine paths are reduced to their last component; ratios, URLs and relative paths stay."""

from __future__ import annotations

import pytest

from fugaku_sim.release.paths import strip_paths, strip_paths_json


@pytest.mark.parametrize("text, expected", [
    ("python 3.11.2 /usr/lib/python3.11", "python 3.11.2 python3.11"),
    ("/root/.venv/bin/python", "python"),
    ('{"source": "/home/me/run/model.safetensors"}', '{"source": "model.safetensors"}'),
    ("| /tmp/x/data |", "| data |"),
    ("(see /work/a/b.json)", "(see b.json)"),
    ("1,234 tokens/s, 1/16, a / b, shards/ja_test", "1,234 tokens/s, 1/16, a / b, shards/ja_test"),
    ("https://example.org/a/b and file:///etc/x", "https://example.org/a/b and file:///etc/x"),
    ("~/data/x", "~/data/x"),
])
def test_strip_paths(text: str, expected: str) -> None:
    assert strip_paths(text) == expected


def test_strip_paths_json_reaches_every_string() -> None:
    value = {"a": ["/x/y/z.txt", 1, None, {"b": "/q/r"}], "n": 2.5, "/p/k": True}
    assert strip_paths_json(value) == {"a": ["z.txt", 1, None, {"b": "r"}], "n": 2.5,
                                       "k": True}
