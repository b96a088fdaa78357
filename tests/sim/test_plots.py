"""Plots that do not mislead: the sweep's twin axes share the zero baseline and the swept
quantity carries its unit."""

from __future__ import annotations

import pytest

from fugaku_sim.sim.plots import sweep_figure
from fugaku_sim.sim.sweep import VARIABLES, axis_label
from fugaku_sim.spec import load_cluster
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS


def rows(values: list[float], tokens: list[float], mfu: list[float]) -> list[dict]:
    return [{"value": v, "step_time_s": 1.0, "tokens_per_s": t, "mfu": m,
             "breakdown_s": dict.fromkeys(BREAKDOWN_KEYS, 0.1)}
            for v, t, m in zip(values, tokens, mfu)]


def test_both_throughput_axes_start_at_zero_and_the_quantity_has_its_unit() -> None:
    import matplotlib.pyplot as plt

    # a 15% change in both: on axes from zero it looks the same on either curve
    fig = sweep_figure(rows([3.4, 6.8, 13.6], [278e3, 321e3, 321.4e3], [0.25, 0.289, 0.289]),
                       "link_bw", axis_label("link_bw", load_cluster("fugaku")), "t")
    throughput, twin = fig.axes[0], fig.axes[2]
    assert throughput.get_ylim()[0] == 0 and twin.get_ylim()[0] == 0
    assert throughput.get_ylim()[1] == pytest.approx(321.4 * 1.15)
    assert twin.get_ylim()[1] == pytest.approx(0.289 * 1.15)
    assert throughput.get_xlabel() == "link bandwidth (GB/s per link and direction)"
    breakdown = fig.axes[1]
    assert [t.get_text() for t in breakdown.get_xticklabels()] == ["3.4", "6.8", "13.6"]
    assert breakdown.get_xlabel() == throughput.get_xlabel()
    plt.close(fig)


def test_every_swept_quantity_has_a_label_with_its_unit() -> None:
    fugaku, dgx = load_cluster("fugaku"), load_cluster("dgx-a100")
    for vary in VARIABLES:
        label = axis_label(vary, fugaku)
        assert vary == "nodes" or "(" in label, vary  # a count, or a unit in brackets
    assert axis_label("link_bw", dgx) == "network bandwidth (GB/s per rail)"


def test_a_node_sweep_draws_linear_scaling_within_the_axes() -> None:
    import matplotlib.pyplot as plt

    fig = sweep_figure(rows([12, 24], [100.0, 150.0], [0.4, 0.3]), "nodes", "nodes", "t")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["linear scaling"].get_ydata()) == pytest.approx([0.1, 0.2])
    assert fig.axes[0].get_ylim() == (0, pytest.approx(0.2 * 1.15))  # the ideal line fits
    plt.close(fig)
