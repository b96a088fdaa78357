"""``fugaku-sim workflow``: the small steps between the workflow's stages.

- ``write``: validate one section of the workflow config (passed as JSON by the Snakefile)
  and write it where the next verb reads it, so a rule reruns only when its section changes;
- ``pick-layout``: the fastest layout of a plan (or a fixed layout) as the run's layout
  record (:mod:`fugaku_sim.spec.record`), which ``train`` and ``predict`` read;
- ``loss-plot``: the loss curves of a run;
- ``run-dir``: make a training work folder this run's own before the trainer resumes from it;
- ``plan-table``: a plan's layouts, or a prediction, as a Markdown table (for the report).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.io import load_json, write_json, write_text

SECTIONS = ("data", "train-settings", "layout")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    w = sub.add_parser("write", help="validate a config section and write it as YAML/JSON")
    w.add_argument("--section", choices=SECTIONS, required=True)
    w.add_argument("--json", dest="payload", required=True, help="the section as JSON")
    w.add_argument("--out", required=True, type=Path)
    p = sub.add_parser("pick-layout", help="the fastest layout of a plan, as a layout record")
    p.add_argument("--plan", required=True, type=Path,
                   help="a plan's JSON (best first), a predict JSON object or a layout record")
    p.add_argument("--out", required=True, type=Path)
    lp = sub.add_parser("loss-plot", help="plot the loss curves of metrics.jsonl")
    lp.add_argument("--metrics", required=True, type=Path)
    lp.add_argument("--vocab", type=int, help="draw ln(vocab), the loss of a uniform guess")
    lp.add_argument("--title", default="training loss")
    lp.add_argument("--out", required=True, type=Path)
    t = sub.add_parser("plan-table",
                       help="a plan's (or a prediction's) JSON as a Markdown table")
    t.add_argument("--plan", required=True, type=Path)
    t.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("run-dir", help="keep a work folder's checkpoints only if its inputs match")
    r.add_argument("--work", required=True, type=Path, help="the trainer's --out folder")
    r.add_argument("--inputs", nargs="+", required=True, type=Path,
                   help="files whose bytes key the run (blend, tokenizer, settings, layout)")
    r.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting that keys the run too (e.g. model=gpt-tiny)")


def _validated(section: str, payload: Any) -> tuple[str, str]:
    """(text, format) of a validated section."""
    import yaml

    from fugaku_sim.spec import Layout, validate_section
    from fugaku_sim.spec.record import LayoutRecord
    from fugaku_sim.workflow.config import TrainOverrides

    if section == "data":
        from fugaku_sim.data.config import DataConfig

        spec = validate_section(DataConfig, payload, "", "data")
        text = yaml.safe_dump({"data": spec.model_dump(mode="json")}, allow_unicode=True)
        return text, "yaml"
    if section == "train-settings":
        over = validate_section(TrainOverrides, payload, "", "train.settings")
        kept = {k: v for k, v in over.model_dump(mode="json").items() if v is not None}
        return yaml.safe_dump(kept), "yaml"
    layout = validate_section(Layout, payload, "", "train.layout")
    return json.dumps(LayoutRecord(layout).to_json(), indent=2) + "\n", "json"


def _table_rows(path: Path) -> tuple[list[dict[str, Any]], str]:
    """The layouts of a plan's JSON, best first, or the one of a predict JSON object, and
    what the table is (``Plan``, ``Prediction``).

    Raises:
        UserError: neither, or a plan without layouts.
    """
    from fugaku_sim.spec.record import plan_entries

    data = load_json(path, str(path))
    rows = plan_entries(data)
    if rows is None and isinstance(data, dict) and "step_time_s" in data:
        return [data], "Prediction"
    if not rows or not isinstance(rows[0], dict):
        raise UserError(f"{path}: expected the JSON of `fugaku-sim plan --json` with at least "
                        "one layout, or of `fugaku-sim predict --json`")
    return rows, "Plan"


def _plan_table(plan: Path) -> str:
    """A plan's layouts, best first, as Markdown: a column for every choice that differs
    between them, what they share, and why the first wins
    (:mod:`fugaku_sim.sim.plan_rows`)."""
    from fugaku_sim.sim.plan_rows import (
        METRICS,
        explain_winner,
        metric_cell,
        shared_text,
        split_dimensions,
    )

    rows, kind = _table_rows(plan)
    first = rows[0]
    differ, shared = split_dimensions(rows)
    if len(rows) == 1:  # one layout (a prediction): every choice in its own column
        differ, shared = differ + shared, []
    metrics = [m for m in METRICS if m[0] in first]
    title = f"# {kind}: {first.get('model', '?')} on {first.get('nodes', '?')} {first.get('cluster', '?')} nodes"
    headings = [d.heading for d in differ] + [m[1] for m in metrics]
    lines = [title, ""]
    if shared:
        lines += [f"Every layout: {shared_text(rows, shared)}.", ""]
    lines += ["| rank | " + " | ".join(headings) + " |", "|---:|" + "---:|" * len(headings)]
    for number, row in enumerate(rows, 1):
        cells = [d.cell(row) for d in differ]
        cells += [metric_cell(row.get(key), fmt) for key, _, fmt in metrics]
        lines.append(f"| {number} | " + " | ".join(cells) + " |")
    why = explain_winner(rows)
    if why:
        lines += ["", "Why the first layout wins:", ""] + [f"- {line}" for line in why]
    return "\n".join(lines) + "\n"


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UserError(f"--arg: expected NAME=VALUE, got {text!r}")
    return name, value


def run(args: argparse.Namespace) -> int:
    if args.action == "write":
        try:
            payload = json.loads(args.payload)
        except ValueError as exc:
            raise UserError(f"--json: not JSON ({exc})") from None
        text, _ = _validated(args.section, payload)
        write_text(args.out, text)
    elif args.action == "pick-layout":
        from fugaku_sim.spec.record import read_layout_record

        write_json(args.out, read_layout_record(args.plan, str(args.plan)).to_json())
    elif args.action == "plan-table":
        write_text(args.out, _plan_table(args.plan))
    elif args.action == "run-dir":
        from fugaku_sim.workflow.rundir import prepare_run_dir, replaced_folder, run_key

        extra = dict(_name_value(a) for a in args.arg)
        action = prepare_run_dir(args.work, run_key(args.inputs, extra))
        print(f"fugaku-sim workflow: {args.work}: " + {
            "resume": "same inputs as its checkpoints: the trainer resumes from them",
            "fresh": "new run",
            "replaced": f"another run's files moved to {replaced_folder(args.work)}; new run",
        }[action])
    else:
        from fugaku_sim.workflow.curves import plot_loss, read_metrics

        plot_loss(read_metrics(args.metrics), args.vocab, args.out, args.title)
    return 0
