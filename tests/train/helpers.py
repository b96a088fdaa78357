"""Test helpers: tensor-parallel ranks simulated by threads (with or without sequence
parallelism), tiny models, tiny shards."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fugaku_sim.train.layers import AllReduce, Collective, Region, megatron_region, sequence_region

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

    def _exchange(self, index: int, x: np.ndarray) -> list[np.ndarray]:
        """Every thread's ``x``, by index (all threads call it together)."""
        self.slots[index] = np.array(x, copy=True)
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()
        return out

    def gather_for(self, index: int) -> Collective:
        """All-gather along T (axis 1) of [B, T', C]: the threads' tokens in index order."""
        def gather(x: np.ndarray) -> np.ndarray:
            return np.concatenate(self._exchange(index, x), axis=1)
        return gather

    def reduce_scatter_for(self, index: int) -> Collective:
        """Reduce-scatter along T of [B, T, C]: thread ``index``'s T / n tokens of the sum."""
        def reduce_scatter(x: np.ndarray) -> np.ndarray:
            total = np.sum(self._exchange(index, x), axis=0)
            t = x.shape[1] // self.n
            return np.ascontiguousarray(total[:, index * t:(index + 1) * t]).astype(x.dtype)
        return reduce_scatter


def thread_region(coll: ThreadCollective, index: int, sequence_parallel: bool) -> Region:
    """Thread ``index``'s tensor-parallel region: Megatron-LM's, or the sequence-parallel one
    (all-gather / reduce-scatter along T among the threads)."""
    allreduce = coll.allreduce_for(index)
    if not sequence_parallel:
        return megatron_region(allreduce)
    return sequence_region(coll.gather_for(index), coll.reduce_scatter_for(index), allreduce,
                           index)


def run_ranks(n: int, fn: Callable[[int, AllReduce], R],
              coll: ThreadCollective | None = None) -> list[R]:
    """Run fn(index, allreduce) in ``n`` threads that share an all-reduce (of ``coll``, a
    new one by default); results by index."""
    coll = coll or ThreadCollective(n)
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


# --------------------------------------------------------------------------- tiny data, model

MICRO_MODEL_YAML = """\
model:
  name: test-micro
  layers: {layers}
  hidden: 16
  heads: 2
  seq_len: 8
  vocab: 64
  tied_embeddings: {tied}
train:
  global_batch: 8
  micro_batch: 2
  steps: 5
  lr: 3.0e-3
  min_lr: 3.0e-4
  warmup_steps: 2
"""


def write_model(path: Path, layers: int = 4, tied: bool = True) -> Path:
    """A tiny model preset (layers divisible by 4 keeps pp=2 interleaving possible)."""
    text = MICRO_MODEL_YAML.format(layers=layers, tied=str(tied).lower())
    path.write_text(text, encoding="utf-8")
    return path


LLAMA_MODEL_LINES = """\
  norm: rmsnorm
  norm_eps: 1.0e-6
  mlp: swiglu
  ffn_hidden: 40
  positions: rotary
  rope_theta: 500.0
  heads: 4
  kv_heads: {kv_heads}
  bias: {bias}
"""


def write_llama_model(path: Path, kv_heads: int = 2, bias: bool = False,
                      tied: bool = False) -> Path:
    """A tiny Llama-shaped preset: the micro model with RMSNorm, SwiGLU, rotary positions,
    four query heads over ``kv_heads`` key/value heads."""
    text = MICRO_MODEL_YAML.format(layers=4, tied=str(tied).lower())
    text = text.replace("  heads: 2\n", LLAMA_MODEL_LINES.format(kv_heads=kv_heads,
                                                                  bias=str(bias).lower()))
    path.write_text(text, encoding="utf-8")
    return path


def write_shard(prefix: Path, docs: list[np.ndarray]) -> None:
    """A Megatron indexed shard (.bin/.idx) via the data stage's writer."""
    from fugaku_sim.data.indexed import IndexedDatasetWriter

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with IndexedDatasetWriter(prefix, np.uint16) as w:
        for d in docs:
            w.add_document(d)


def write_data(root: Path, vocab: int = 64, seed: int = 0, docs: int = 40) -> Path:
    """A data directory like the data stage's: two domains, train and valid splits."""
    from fugaku_sim.data.blend import Blend, BlendEntry, write_blend

    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[BlendEntry, ...]] = {}
    for split, n in (("train", docs), ("valid", docs // 4)):
        entries = []
        for domain, weight in (("ja", 0.6), ("en", 0.4)):
            prefix = f"shards/{domain}_{split}"
            # learnable documents of varied length: counting runs (a, a+1, ...) with an
            # occasional random token, ending in the end-of-document id 2
            ds = []
            for _ in range(n):
                k = int(rng.integers(3, 30))
                doc = 3 + (int(rng.integers(0, vocab)) + np.arange(k)) % (vocab - 3)
                noise = rng.random(k) < 0.1
                doc[noise] = rng.integers(3, vocab, size=int(noise.sum()))
                ds.append(np.r_[doc, 2])
            write_shard(root / prefix, ds)
            entries.append(BlendEntry(domain=domain, prefix=prefix, weight=weight,
                                      tokens=int(sum(len(d) for d in ds))))
        splits[split] = tuple(entries)
    write_blend(root, Blend(tokenizer="tokenizer.model", eod_id=2, vocab_size=vocab,
                            splits=splits))
    return root


# --------------------------------------------------------------------------- one-rank comm


class _Done:
    """A completed request."""

    def Wait(self) -> None:  # noqa: N802  (mpi4py's name)
        return None


class SelfComm:
    """The data-parallel communicator of one rank, without MPI: every collective over one
    rank leaves the buffer as it is (in place), as MPI's would."""

    rank, size = 0, 1

    def Iallgather(self, sendbuf: Any, recvbuf: np.ndarray) -> _Done:  # noqa: N802
        return _Done()

    def Reduce_scatter_block(self, sendbuf: Any, recvbuf: np.ndarray, op: Any = None  # noqa: N802
                             ) -> None:
        return None

    def Ireduce_scatter_block(self, sendbuf: Any, recvbuf: np.ndarray,  # noqa: N802
                              op: Any = None) -> _Done:
        return _Done()
