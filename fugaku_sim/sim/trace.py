"""Trace: one simulated step as Chrome trace-event JSON (opens in Perfetto and chrome://tracing).

Format: the Trace Event Format (Google, "Trace Event Format" document, 2016): a JSON object
with ``traceEvents``, a list of complete events ``{"ph": "X", "name", "cat", "pid", "tid",
"ts", "dur"}`` with times in microseconds, plus metadata events (``"ph": "M"``) naming
processes and threads. Here a process is a pipeline stage and it has two threads (lanes):
``compute`` (forward, backward, recompute, optimizer) and ``comm`` (tensor all-reduces,
pipeline sends, gradient sync).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fugaku_sim.io import write_text
from fugaku_sim.sim.engine import TraceEvent

LANES = {"compute": 0, "comm": 1}


def trace_events(events: list[TraceEvent], pp: int) -> list[dict[str, Any]]:
    """Chrome trace events of one replica's stages, metadata first."""
    out: list[dict[str, Any]] = []
    for s in range(pp):
        out.append(
            {"ph": "M", "name": "process_name", "pid": s, "tid": 0, "args": {"name": f"stage {s}"}}
        )
        out.append(
            {"ph": "M", "name": "process_sort_index", "pid": s, "tid": 0, "args": {"sort_index": s}}
        )
        for lane, tid in LANES.items():
            out.append(
                {"ph": "M", "name": "thread_name", "pid": s, "tid": tid, "args": {"name": lane}}
            )
    for e in events:
        out.append(
            {
                "ph": "X",
                "name": e.name,
                "cat": e.category,
                "pid": e.stage,
                "tid": LANES[e.lane],
                "ts": e.start * 1e6,
                "dur": e.duration * 1e6,
            }
        )
    return out


def write_trace(path: Path, events: list[TraceEvent], pp: int, metadata: dict[str, Any]) -> None:
    """Write the trace file (``displayTimeUnit`` ms; ``otherData`` carries the prediction's
    scalar fields as strings, as the format's metadata dictionary expects)."""
    other = {k: str(v) for k, v in metadata.items() if not isinstance(v, dict | list)}
    doc = {"traceEvents": trace_events(events, pp), "displayTimeUnit": "ms", "otherData": other}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(doc))
