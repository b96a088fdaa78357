"""The layout record: how a run is laid out and trained, as one JSON object.

One record travels from a plan (or a workflow config's fixed layout) to the trainer, so the
run that is trained is the run that was predicted::

    {"layout": {"tp": 2, "pp": 2, "dp": 6, ..., "job_shape": [2, 3, 2],
                "processes_per_node": 2},
     "train": {"global_batch": 24, "micro_batch": 2, "recompute": "none", ...}}

- ``layout`` is a complete :class:`~fugaku_sim.spec.layout.Layout`. A prediction writes the
  job shape it placed the ranks on and the processes per node it ran, so that reading the
  record back runs the same placement.
- ``train`` is a complete :class:`~fugaku_sim.spec.train.TrainSpec`; it is absent when only a
  layout was fixed (a workflow config's ``train.layout``).

Writers: ``predict --json`` and every entry of ``plan --json``'s ``plans`` list carry the
record beside the contract's flat keys (shared/DESIGN.md); ``workflow write --section layout`` and
``workflow pick-layout`` write it alone; ``plan --emit-job`` writes it beside the job script.
Reader: :func:`read_layout_record`, behind ``--layout-from`` of ``train``, ``predict`` and
``check``, and behind ``workflow pick-layout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.io import load_json
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.load import validate_section
from fugaku_sim.spec.train import TrainSpec

RECORD_KEYS = ("layout", "train")
#: the key of ``plan --json``'s object under which its layouts are listed, best first
PLANS_KEY = "plans"


@dataclass(frozen=True)
class LayoutRecord:
    """A validated layout and, when known, the training settings that go with it."""

    layout: Layout
    train: TrainSpec | None = None

    def to_json(self) -> dict[str, Any]:
        """The record's JSON object (``train`` left out when there is none)."""
        out: dict[str, Any] = {"layout": self.layout.model_dump(mode="json")}
        if self.train is not None:
            out["train"] = self.train.model_dump(mode="json")
        return out


def plan_entries(data: Any) -> list[Any] | None:
    """The layouts of a plan's JSON, best first: ``plan --json``'s object lists them under
    :data:`PLANS_KEY`; a plan written before it carried a ``meta`` block is a bare list.
    None when ``data`` is not a plan."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get(PLANS_KEY), list):
        return data[PLANS_KEY]
    return None


def parse_layout_record(data: Any, what: str) -> LayoutRecord:
    """The record in ``data``: an object with ``layout`` (and ``train``), such as a predict
    JSON object, or a plan's JSON (:func:`plan_entries`), whose first entry is its best
    layout. Other keys of the object (a prediction's figures, ``meta``) are ignored.

    Raises:
        UserError: ``what``-prefixed, naming the missing or invalid field.
    """
    entries = plan_entries(data)
    if entries is not None:
        if not entries:
            raise UserError(f"{what}: an empty plan (no layout to take)")
        data = entries[0]
    if not isinstance(data, dict):
        raise UserError(f"{what}: expected a JSON object with a 'layout' object, "
                        f"found {type(data).__name__}")
    if not isinstance(data.get("layout"), dict):
        raise UserError(f"{what}: no 'layout' object; write one with `fugaku-sim predict --json`, "
                        "`plan --json` or `workflow pick-layout`")
    layout = validate_section(Layout, data["layout"], what, "layout")
    train = None
    if data.get("train") is not None:
        train = validate_section(TrainSpec, data["train"], what, "train")
    return LayoutRecord(layout, train)


def read_layout_record(path: str | Path, what: str) -> LayoutRecord:
    """The record in the JSON file at ``path`` (see :func:`parse_layout_record`).

    Raises:
        UserError: ``what``-prefixed: the file is missing, unreadable or not JSON, or holds
            no valid record.
    """
    return parse_layout_record(load_json(path, what), what)
