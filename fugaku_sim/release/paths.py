"""Keep the build machine's paths out of a release: absolute paths in text become their last
component (``/home/me/run/data/maths_eval.jsonl`` -> ``maths_eval.jsonl``).

A release is published; where its inputs lay on the machine that built it says nothing to a
reader and can reveal user names and directory layouts. Inputs of other stages (eval.json,
the data manifest, training summary, prediction, comparison) record such paths for their own
use, so they are rewritten on their way into the release.
"""

from __future__ import annotations

import re
from typing import Any

# an absolute POSIX path: '/' not preceded by a word character, '.', ':', '/', '~' or '-'
# (so 'tokens/s', '1/16' and URLs stay), then components up to whitespace or punctuation
# that ends a path in prose, JSON or a Markdown table
_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/|\"'`<>()\[\]{},;]+/)*([^\s/|\"'`<>()\[\]{},;]+)")


def strip_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last component.

    >>> strip_paths("python 3.11.2 /usr/lib/python3.11; 12 tokens/s; https://x.org/a")
    'python 3.11.2 python3.11; 12 tokens/s; https://x.org/a'
    """
    return _PATH.sub(lambda m: m.group(1), text)


def strip_paths_json(value: Any) -> Any:
    """A copy of a JSON value with :func:`strip_paths` applied to every string and key in it."""
    if isinstance(value, str):
        return strip_paths(value)
    if isinstance(value, dict):
        return {strip_paths(k): strip_paths_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_paths_json(v) for v in value]
    return value
