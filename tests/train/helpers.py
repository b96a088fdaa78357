"""Test helpers: tensor-parallel ranks simulated by threads, tiny models, tiny shards."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from fugaku_sim.train.layers import AllReduce

R = TypeVar("R")


class ThreadCollective:
    """An all-reduce among ``n`` threads (sum or max), for pure tensor-parallel tests."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.barrier = threading.Barrier(n, timeout=30)
        self.slots: list[Any] = [None] * n

    def allreduce_for(self, index: int) -> AllReduce:
        def allreduce(x: np.ndarray, op: str) -> np.ndarray:
            self.slots[index] = np.array(x, copy=True)
            self.barrier.wait()
            stacked = np.stack(self.slots)
            out = stacked.max(axis=0) if op == "max" else stacked.sum(axis=0)
            self.barrier.wait()
            return out.astype(x.dtype)
        return allreduce


def run_ranks(n: int, fn: Callable[[int, AllReduce], R]) -> list[R]:
    """Run fn(index, allreduce) in ``n`` threads that share an all-reduce; results by index."""
    coll = ThreadCollective(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = fn(i, coll.allreduce_for(i))
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)
            coll.barrier.abort()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
