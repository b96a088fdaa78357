"""FlowNetwork: max-min fair sharing, with exact (who, env.now) logs."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from fugaku_sim.sim.network import FlowNetwork, max_min_rates


def test_max_min_textbook_example() -> None:
    """Bertsekas & Gallager: flows A (links 0,1), B (link 0), C (link 1), D (link 1) on unit
    links: C and D and A share link 1 at 1/3; B takes the rest of link 0, 2/3."""
    rates = max_min_rates(
        [np.array([0, 1]), np.array([0]), np.array([1]), np.array([1])], [np.inf] * 4, np.ones(2)
    )
    assert rates.tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 3, 1 / 3])


def test_flow_cap_limits_a_lone_flow() -> None:
    assert max_min_rates([np.array([0])], [0.25], np.ones(1)).tolist() == [0.25]


def test_two_flows_share_then_one_speeds_up() -> None:
    """a (2 GB) and b (1 GB) share a 1 GB/s link: b ends at 2 s; a then runs alone to 3 s;
    c on another link ends at 1 s."""
    env = simpy.Environment()
    net = FlowNetwork(env, np.array([1e9, 1e9]))
    log: list[tuple[str, float]] = []

    def sender(
        name: str, links: list[int], nbytes: float, start: float
    ) -> Generator[Any, Any, None]:
        yield env.timeout(start)
        log.append((name + " starts", env.now))
        yield net.transfer(links, nbytes)
        log.append((name + " arrives", env.now))

    env.process(sender("a", [0], 2e9, 0.0))
    env.process(sender("b", [0], 1e9, 0.0))
    env.process(sender("c", [1], 1e9, 0.0))
    env.run()
    assert [(w, round(t, 9)) for w, t in log] == [
        ("a starts", 0.0), ("b starts", 0.0), ("c starts", 0.0),
        ("c arrives", 1.0), ("b arrives", 2.0), ("a arrives", 3.0),
    ]  # fmt: skip
    assert net.flows == []


def test_late_flow_slows_an_early_one() -> None:
    env = simpy.Environment()
    net = FlowNetwork(env, np.array([1e9]))
    done: dict[str, float] = {}

    def sender(name: str, nbytes: float, start: float) -> Generator[Any, Any, None]:
        yield env.timeout(start)
        yield net.transfer([0], nbytes)
        done[name] = env.now

    env.process(sender("early", 1e9, 0.0))  # alone for 0.5 s (0.5 GB), then shares
    env.process(sender("late", 0.25e9, 0.5))  # shares at 0.5 GB/s: 0.5 s
    env.run()
    assert done["late"] == pytest.approx(1.0)
    assert done["early"] == pytest.approx(1.25)
