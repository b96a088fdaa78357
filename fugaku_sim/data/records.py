"""The files the data stages hand each other, read behind one error path.

Each stage writes ``<stage folder>/report.json`` and JSON-lines files of records
``{"id", "source", "domain", "text"}`` (all text) that the next stage streams: ``raw/``
(collect), ``clean/``, ``dedup/``. A file of an earlier stage that was edited by hand, cut
short or written by another tool gives one line naming the file, the line and the stage to
rerun, never a traceback from deep inside a worker process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fugaku_sim.data.config import DOMAINS, SOURCE_NAME_PATTERN
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json

#: the fields of a record, each a string
RECORD_FIELDS = ("id", "source", "domain", "text")
#: the domains of a raw record: a fixed one, or ``auto`` (routed by language while cleaning)
RAW_DOMAINS = (*DOMAINS, "auto")
_STEM = re.compile(SOURCE_NAME_PATTERN)


def parse_record(line: str | bytes, where: str, stage: str,
                 domains: tuple[str, ...] = DOMAINS,
                 fields: tuple[str, ...] = RECORD_FIELDS) -> dict[str, Any]:
    """One line of a stage's JSON-lines file as a record, checked: a JSON object whose
    ``fields`` are text and whose domain (if a field) is one of ``domains``.

    ``where`` names the file and line; ``stage`` is the stage that wrote it.

    Raises:
        UserError: not UTF-8, not a JSON object, a field missing or not text, an unknown
            domain (one line; rerun ``stage``).
    """
    hint = f"; rerun `fugaku-sim data {stage}`"
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{where}: not UTF-8 text (byte {exc.start}){hint}") from None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise UserError(f"{where}: not a JSON object{hint}") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: not a JSON object{hint}")
    missing = [k for k in fields if not isinstance(record.get(k), str)]
    if missing:
        raise UserError(f"{where}: no text field {missing[0]!r}{hint}")
    if "domain" in fields and record["domain"] not in domains:
        raise UserError(f"{where}: domain {record['domain'][:40]!r} is not one of "
                        f"{', '.join(domains)}{hint}")
    return record


def iter_texts(path: Path, stage: str) -> Iterator[str]:
    """The ``text`` of each line of a stage's JSON-lines file, streamed (a file may be far
    larger than memory), each line checked by :func:`parse_record`.

    Raises:
        UserError: a line that is not a record (file and line named).
    """
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            yield parse_record(line, f"{path}:{number}", stage, fields=("text",))["text"]


def stage_report(out_dir: Path, folder: str, stage: str, keys: tuple[str, ...] = ()
                 ) -> dict[str, Any]:
    """``out_dir/<folder>/report.json``, with each of ``keys`` present; its ``sources``
    (when asked for) a mapping of names that are file stems (they name files beside it).

    Raises:
        UserError: missing (run ``stage`` first), unreadable or of the wrong shape.
    """
    path = out_dir / folder / "report.json"
    report = read_json(path, stage)
    hint = f"; rerun `fugaku-sim data {stage}`"
    if not isinstance(report, dict):
        raise UserError(f"{path}: not a JSON object{hint}")
    lacking = [k for k in keys if k not in report]
    if lacking:
        raise UserError(f"{path}: no {lacking[0]!r}{hint}")
    sources = report.get("sources", {}) if "sources" in keys else {}
    if not isinstance(sources, dict):
        raise UserError(f"{path}: 'sources' is not a mapping{hint}")
    bad = [name for name in sources if not _STEM.match(name)]
    if bad:
        raise UserError(f"{path}: source name {bad[0][:40]!r} is not a file name{hint}")
    return report
