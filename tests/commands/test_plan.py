"""``plan --deadline/--budget``: pure JSON that ``--layout-from`` reads, a plot, and bad input
as one line with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# the 13B model's ladder from 72,576 nodes to the usable job scale: two rungs, seconds
TOP = ("plan", "--cluster", "fugaku", "--model", "fugaku-llm-13b", "--nodes-min", "72576",
       "--seeds", "20")
# the whole machine alone: one rung
WHOLE = ("plan", "--cluster", "fugaku", "--model", "fugaku-llm-13b", "--nodes-min", "82944",
         "--seeds", "20")


def test_goal_seek_json_plot_and_layout_record(run_cli, tmp_path: Path) -> None:
    status, out, err = run_cli(*TOP, "--deadline", "10", "--json", "--plot",
                               str(tmp_path / "goal.png"))
    assert status == 0, err
    doc = json.loads(out)  # nothing but JSON on stdout
    assert doc["node_counts"] == [72576, 82944]
    choice = doc["choice"]
    assert choice["wall_days"]["p90"] <= 10 and choice["meets_goal"]
    meeting = [p for p in doc["points"] if p["meets_goal"]]
    assert choice["allocated_nodes"] == min(p["allocated_nodes"] for p in meeting)
    assert set(doc["pareto_nodes"]) <= {p["nodes"] for p in doc["points"]}
    assert (tmp_path / "goal.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "goal.json").write_text(out)
    status, out, err = run_cli("predict", "--cluster", "fugaku", "--model", "fugaku-llm-13b",
                               "--layout-from", str(tmp_path / "goal.json"), "--json")
    assert status == 0, err
    pred = json.loads(out)
    assert (pred["nodes"], pred["tp"], pred["pp"], pred["dp"]) == (
        choice["nodes"], choice["tp"], choice["pp"], choice["dp"])
    assert pred["step_time_s"] == pytest.approx(choice["step_time_s"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--deadline", "1"), "--deadline: no allocation of 82,944 nodes finishes within "
                              "1 days with 90% probability; the best reachable p90 is"),
        (("--budget", "-5"), "argument --budget: must be positive, got -5"),
        (("--deadline", "30", "--elapse-h", "0.1"), "is shorter than start-up and restore"),
        (("--deadline", "30", "--nodes", "12"), "--nodes: a goal-seek (--deadline/--budget)"),
        (("--budget", "1000"), "--budget: no allocation of 82,944 nodes stays within "
                               "1,000 node-hours"),
    ],
    ids=["deadline-out-of-reach", "negative-budget", "elapse-below-a-checkpoint-interval",
         "nodes-and-deadline", "budget-out-of-reach"],
)
def test_bad_goal_is_one_line_exit_2(run_cli, tmp_path: Path, options: tuple[str, ...],
                                     message: str) -> None:
    status, out, err = run_cli(*WHOLE, *options, "--plot", str(tmp_path / "goal.png"))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "goal.png").exists()  # nothing half-written
