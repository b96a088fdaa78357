"""Sequence parallelism in the trainer: the collectives along T over the tensor group, and the
gradients of the tensors used on a rank's share of the sequence.

Shape key: B batch, T sequence, T' = T / tp tokens of a rank outside the tensor-parallel
regions, C channels.

Korthikanti et al. 2022 (section 4.2.2, figure 5) shard the norms, dropouts and residual adds
along the sequence over the tensor group: a tensor-parallel region is entered by an
all-gather along T (its backward a reduce-scatter) and left by a reduce-scatter along T (its
backward an all-gather), instead of Megatron-LM's all-reduce pair
(:func:`fugaku_sim.train.layers.sequence_region`).

Megatron-LM keeps activations as [T, B, C], so its collectives work on the leading axis. Here
they are [B, T, C]: with B > 1 a rank's T' tokens of every sequence are not contiguous, so the
reduce-scatter sends a contiguous copy ordered [tp, B, T', C] (:func:`sequence_chunks`) and
the all-gather receives that order and puts it back (:func:`from_sequence_chunks`); with
B = 1 both are views. The collectives are MPI buffer calls (``Allgather``,
``Reduce_scatter_block``) on the tensor communicator, timed as ``tp_comm``.

Gradients: a tensor replicated over the tensor ranks and used on T' tokens (the norms'
weights and biases, the row-parallel layers' biases, the learned positions: every ``rep``
tensor of :mod:`fugaku_sim.tensors`) gets on each rank the gradient of that rank's tokens
only; the gradient is their sum over the tensor group. Megatron-LM all-reduces the gradients
of the parameters it marks ``sequence_parallel`` over the tensor group after the backward
(``_allreduce_layernorm_grads``, ``megatron/core/distributed/finalize_model_grads.py``);
:class:`SequenceParallelGrads` does the same on the ranges this rank updates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors import tensor_table
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.copies import GroupSum
from fugaku_sim.train.layers import AllReduce, Region, sequence_region
from fugaku_sim.train.timers import Timers


def sequence_chunks(x: np.ndarray, parts: int) -> np.ndarray:
    """x [B, T, C] as ``parts`` contiguous chunks along T: [parts, B, T / parts, C], chunk r
    holding tokens [r T', (r + 1) T') of every sequence (a view when B = 1).

    Raises:
        ValueError: ``parts`` does not divide T.
    """
    b, t, c = x.shape
    if t % parts:
        raise ValueError(f"{parts} ranks do not divide a sequence of {t} tokens")
    return np.ascontiguousarray(x.reshape(b, parts, t // parts, c).transpose(1, 0, 2, 3))


def from_sequence_chunks(chunks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sequence_chunks`: [parts, B, T', C] -> [B, parts T', C]."""
    parts, b, t, c = chunks.shape
    return chunks.transpose(1, 0, 2, 3).reshape(b, parts * t, c)


class SequenceCollectives:
    """All-gather and reduce-scatter along T over the tensor group ``comm`` (the identity on
    one rank); each returns a new array and is timed as ``tp_comm``."""

    def __init__(self, comm: Any, timers: Timers) -> None:
        self.comm, self.timers = comm, timers
        self.size = comm.size if comm is not None else 1
        self.rank = comm.rank if comm is not None else 0

    def gather(self, x: np.ndarray) -> np.ndarray:
        """[B, T', C] of every rank -> [B, T, C], the ranks' tokens in rank order."""
        if self.size == 1:
            return x
        with self.timers.region("tp_comm"):
            chunks = np.empty((self.size, *x.shape), dtype=x.dtype)
            self.comm.Allgather(np.ascontiguousarray(x), chunks)
            return from_sequence_chunks(chunks)

    def reduce_scatter(self, x: np.ndarray) -> np.ndarray:
        """Partial [B, T, C] of every rank -> this rank's T' tokens of their sum, [B, T', C]."""
        if self.size == 1:
            return x
        from mpi4py import MPI

        with self.timers.region("tp_comm"):
            chunks = sequence_chunks(x, self.size)
            out = np.empty(chunks.shape[1:], dtype=x.dtype)
            self.comm.Reduce_scatter_block(chunks, out, op=MPI.SUM)
            return out


def sequence_parallel_region(comm: Any, timers: Timers, allreduce: AllReduce) -> Region:
    """The sequence-parallel :class:`~fugaku_sim.train.layers.Region` over the tensor group
    ``comm`` (``allreduce``: its all-reduce, for the vocabulary-parallel cross-entropy)."""
    ops = SequenceCollectives(comm, timers)
    return sequence_region(ops.gather, ops.reduce_scatter, allreduce, ops.rank)


def replicated_index(model: ModelSpec, flat: FlatParams) -> np.ndarray:
    """Sorted flat offsets of the elements of every tensor replicated over the tensor ranks
    (split ``rep``) in ``flat``."""
    table = tensor_table(model)
    parts = [np.arange(*flat.offsets[n]) for n in flat.names if table[n].split.kind == "rep"]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


class SequenceParallelGrads(GroupSum):
    """Sums the gradients of the replicated tensors over the tensor group under sequence
    parallelism (see the module docstring); nothing otherwise."""

    def __init__(self, model: ModelSpec, layout: Layout, flat: FlatParams, tp_comm: Any,
                 timers: Timers) -> None:
        on = layout.sequence_parallel and layout.tp > 1
        super().__init__(replicated_index(model, flat) if on else np.zeros(0, dtype=np.int64),
                         tp_comm if on else None, timers)
