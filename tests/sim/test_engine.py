"""The pipeline engine: exact simpy timelines, and the bubble coming out of the simulation."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from fugaku_sim.sim.engine import PipelineEngine
from fugaku_sim.sim.segments import Segment
from tests.sim.small import small_job, small_torus


class FixedTransport:
    """Sends take 0.5 s, gradient sync 1 s, no tensor parallelism."""

    analytic = True

    def __init__(self, env: simpy.Environment):
        self.env = env

    def tp_time_s(self, stage: int, nbytes: float, op: str = "allreduce") -> float:
        return 0.0

    def dp_time_s(self, stage: int, nbytes: float, op: str) -> float:
        return 0.0

    def tp_collective(self, r: int, stage: int, nbytes: float, op: str
                      ) -> Generator[Any, Any, None]:
        yield self.env.timeout(self.tp_time_s(stage, nbytes))

    def dp_collective(self, r: int, stage: int, nbytes: float, op: str, key: Any
                      ) -> Generator[Any, Any, None]:
        yield self.env.timeout(0.0)

    def p2p(self, r: int, src: int, dst: int, nbytes: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(0.5)

    def grad_sync(self, r: int, stage: int, op: str = "allreduce") -> Generator[Any, Any, None]:
        yield self.env.timeout(1.0)

    def embedding_sync(self, r: int, stage: int) -> Generator[Any, Any, None]:
        yield self.env.timeout(0.0)


class FixedEngine(PipelineEngine):
    """Every forward takes 1 s and every backward 2 s."""

    def segments(self, stage: int, chunk: int, kind: str) -> list[Segment]:
        return [Segment("compute", seconds=1.0 if kind == "F" else 2.0)]


def run_fixed(pp: int, dp: int, global_batch: int, schedule: str = "1f1b") -> Any:
    job = small_job(small_torus((2, 2, 2)), 1, pp, dp, global_batch=global_batch, schedule=schedule)
    env = simpy.Environment()
    return FixedEngine(job, FixedTransport(env), trace=True).run()


def test_two_stage_1f1b_exact_log() -> None:
    """pp=2, m=3: (stage, op, start) worked out by hand from the 1F1B order and dependencies."""
    result = run_fixed(pp=2, dp=4, global_batch=12)
    log = [(e.stage, e.name, e.start) for e in result.trace if e.category != "optimizer"]
    assert log == [
        (0, "F0", 0.0), (0, "send F0", 1.0), (0, "F1", 1.5), (1, "F0", 1.5),
        (0, "send F1", 2.5), (1, "B0", 2.5), (1, "send B0", 4.5), (1, "F1", 5.0),
        (0, "B0", 5.0), (1, "B1", 6.0), (0, "F2", 7.0), (1, "send B1", 8.0),
        (0, "send F2", 8.0), (1, "F2", 8.5), (0, "B1", 8.5), (1, "B2", 9.5),
        (1, "send B2", 11.5), (1, "grad sync", 12.0), (0, "B2", 12.0), (0, "grad sync", 14.0),
    ]  # fmt: skip
    assert result.critical == (0, 0)
    assert result.ledgers[(0, 0)].seconds["compute"] == 9.0


@pytest.mark.parametrize("pp, m", [(2, 2), (4, 4), (4, 8), (8, 3)])
def test_bubble_matches_closed_form_without_communication(pp: int, m: int) -> None:
    """Uniform stages, no transfer time: 1F1B idle time is (p - 1)(f + b) (Narayanan 2021)."""

    class Free(FixedTransport):
        def p2p(self, r: int, src: int, dst: int, nbytes: float) -> Generator[Any, Any, None]:
            yield self.env.timeout(0.0)

    job = small_job(small_torus((2, 2, 2)), 1, pp, 8 // pp, global_batch=m * (8 // pp))
    env = simpy.Environment()
    result = FixedEngine(job, Free(env)).run()
    ledger = result.ledgers[result.critical]
    busy = sum(ledger.seconds.values())
    assert ledger.end - busy == pytest.approx((pp - 1) * 3.0)


def test_gpipe_steps_no_faster_than_1f1b() -> None:
    """Same bubble in theory; with blocking sends GPipe's all-forward phase is not faster."""
    a = run_fixed(pp=2, dp=4, global_batch=16)
    b = run_fixed(pp=2, dp=4, global_batch=16, schedule="gpipe")
    assert b.step_time_s >= a.step_time_s - 1e-9
