"""Plan rows: a column for every choice that differs, what all rows share, why #1 wins."""

from __future__ import annotations

import copy
import doctest
from typing import Any

from fugaku_sim.sim import plan_rows
from fugaku_sim.sim.plan_rows import explain_winner, recompute_label, split_dimensions

ROW: dict[str, Any] = {
    "tp": 6, "pp": 8, "dp": 288, "micro_batch": 1, "schedule": "1f1b", "virtual_stages": 1,
    "placement": "topology", "rank_order": "tp-dp-pp", "job_shape": "48x6x48",
    "sequence_parallel": False, "recompute": "first-half", "recompute_stages": [0, 1, 2, 3],
    "selective_recompute_stages": [], "zero_stage": 0, "step_time_s": 12.0,
    "memory_per_node_GiB": 13.5,
    "breakdown_s": {"compute": 4.5, "recompute": 1.5, "tp_comm": 1.2, "pp_comm": 0.0,
                    "dp_comm": 0.2, "bubble": 4.6, "optimizer": 0.0},
}


def variant(**changes: Any) -> dict[str, Any]:
    row = copy.deepcopy(ROW)
    for key, value in changes.items():
        if key in row["breakdown_s"]:
            row["breakdown_s"][key] = value
        else:
            row[key] = value
    return row


def test_recompute_labels_name_full_and_selective_stages() -> None:
    assert recompute_label(ROW) == "full 0-3"
    assert recompute_label(variant(selective_recompute_stages=[4, 5, 6, 7])) == (
        "full 0-3, selective rest")
    assert recompute_label(variant(recompute_stages=[], selective_recompute_stages=list(
        range(8)))) == "selective"
    assert recompute_label(variant(recompute_stages=list(range(8)))) == "full"
    assert recompute_label(variant(recompute_stages=[])) == "none"
    assert doctest.testmod(plan_rows).failed == 0


def test_a_column_for_every_dimension_that_differs_and_the_rest_said_once() -> None:
    """Two rows that differ only in recomputation (and the placement of another) no longer
    look alike."""
    rows = [ROW, variant(recompute_stages=[], selective_recompute_stages=list(range(8))),
            variant(placement="linear")]
    differ, shared = split_dimensions(rows)
    assert [d.heading for d in differ] == ["placement", "recompute"]
    assert "seq. parallel" in [d.heading for d in shared] and "ZeRO" in [d.heading for d in shared]


def test_explain_winner_names_the_gap_and_the_terms_that_make_it() -> None:
    rows = [ROW, variant(step_time_s=12.9, sequence_parallel=True, recompute_stages=[],
                         selective_recompute_stages=list(range(8)), tp_comm=2.1,
                         memory_per_node_GiB=9.0)]
    (seq, rec) = explain_winner(rows)
    assert seq.startswith("seq. parallel off rather than on: the best such layout (#2)")
    assert "+0.900 s (+7.5%): tp_comm +0.900 s" in seq and "also differs in recompute" in seq
    assert rec.startswith("recompute full 0-3 rather than selective")
    assert explain_winner([ROW]) == []
    tie = explain_winner([ROW, variant(placement="linear")])
    assert tie == ["placement topology rather than linear: a tie with #2 (ranked by order of "
                   "search)"]
