"""Key/value heads held in copies, and the gradient norm that counts each parameter once.

With grouped-query attention and fewer key/value heads K than tensor ranks, each head is
held whole by tp / K ranks (:mod:`fugaku_sim.tensors.split`: Megatron-LM and vLLM replicate
them so). Each copy's gradient holds only the part that flows from its own rank's query
heads; the true gradient is their sum. So after the data-parallel reduction the trainer sums
the copied elements over the ranks that hold them (a sub-group of the tensor group, as
Megatron-LM all-reduces the sequence-parallel norm gradients over the tensor group after the
backward), and every copy then takes the same optimizer step and stays equal.

In the global gradient norm a tensor split over the tensor ranks counts on every rank (each
holds a different part), a replicated tensor on tensor rank 0 only, a copied key/value head
on the first rank of its copies only, a tied copy nowhere (the stage holding what it copies
counts it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import tensor_table
from fugaku_sim.tensors.split import Split, shard
from fugaku_sim.train.buffers import FlatParams, Piece
from fugaku_sim.train.stage import norm_names
from fugaku_sim.train.timers import Timers


def copies_per_head(model: ModelSpec, tp: int) -> int:
    """Tensor ranks holding each key/value head: tp / K when K < tp, else 1."""
    return tp // model.kv if model.kv < tp else 1


def _copied_indicator(split: Split, length: int, tp: int) -> np.ndarray:
    """[length] along the split axis of a head-split tensor: 1 where the head is copied."""
    width = length // sum(split.heads)
    return np.concatenate([np.full(h * width, 1.0 if h < tp else 0.0) for h in split.heads])


def copied_elements(model: ModelSpec, name: str, tp: int, tp_rank: int) -> np.ndarray | None:
    """0/1 over tensor rank ``tp_rank``'s part of ``name`` (its local shape): 1 on the
    elements of copied key/value heads; None when the tensor holds none."""
    row = tensor_table(model)[name]
    split = row.split
    if split.kind != "qkv" or tp == 1 or min(split.heads) >= tp:
        return None
    axis = split.axis % len(row.shape)  # type: ignore[operator]
    along = shard(_copied_indicator(split, row.shape[axis], tp), Split("qkv", split.heads, 0),
                  tp, tp_rank)
    view = [1] * len(row.shape)
    view[axis] = along.size
    return np.broadcast_to(along.reshape(view), row.local_shape(tp))


def copied_mask(model: ModelSpec, flat: FlatParams, tp: int, tp_rank: int) -> np.ndarray:
    """A flat bool array over ``flat``'s layout: True on the elements of copied key/value
    heads."""
    mask = np.zeros(flat.padded, dtype=bool)
    for name in flat.names:
        local = copied_elements(model, name, tp, tp_rank)
        if local is not None:
            start, end = flat.offsets[name]
            mask[start:end] = local.ravel()
    return mask


def _runs(keep: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) of every run of True in the bool array ``keep``."""
    edges = np.flatnonzero(np.diff(np.r_[False, keep, False].astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def counted_ranges(model: ModelSpec, flat: FlatParams, tp: int, tp_rank: int,
                   piece: Piece) -> list[tuple[int, int]]:
    """Where, in ``piece``, the elements lie that this rank counts in the global gradient
    norm, as [lo, hi) relative to its start (:meth:`FlatParams.ranges_of`): those of
    :func:`~fugaku_sim.train.stage.norm_names`, less the copied key/value heads unless this
    rank is the first of their copies, so that every parameter counts once."""
    counted = norm_names(model, flat.names, tp_rank)
    if tp_rank % copies_per_head(model, tp) == 0:
        return flat.ranges_of(counted, piece)
    mask = copied_mask(model, flat, tp, tp_rank)
    copied = {n for n in counted if mask[slice(*flat.offsets[n])].any()}
    out = flat.ranges_of(counted - copied, piece)
    for name in sorted(copied):  # their elements that are not copies
        lo, hi = (max(flat.offsets[name][0], piece.start), min(flat.offsets[name][1], piece.end))
        out += [(lo + a - piece.start, lo + b - piece.start) for a, b in _runs(~mask[lo:hi])]
    return out


class GroupSum:
    """Sums chosen elements of the flat gradients over a communicator, in place: the
    elements at ``index`` (sorted flat offsets), over ``comm`` (None: nothing to sum)."""

    def __init__(self, index: np.ndarray, comm: Any | None, timers: Timers) -> None:
        self.index = index
        self.comm = comm
        self.timers = timers

    def sum(self, grads: list[tuple[np.ndarray, int]]) -> None:
        """Sum, over the communicator and in place, the chosen elements of each
        ``(grad, start)``: ``grad`` the gradients of the flat range [start, start +
        grad.size) (the ranges this rank updates; equal on every rank of the communicator,
        whose flat layouts are the same). One all-reduce (timed as ``tp_comm``)."""
        if self.comm is None:
            return
        from mpi4py import MPI

        picked = []
        for grad, start in grads:
            lo, hi = np.searchsorted(self.index, [start, start + grad.size])
            picked.append((grad, self.index[lo:hi] - start))
        with self.timers.region("tp_comm"):
            buf = np.concatenate([g[i] for g, i in picked]) if picked else np.zeros(0)
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            at = 0
            for grad, local in picked:
                grad[local] = buf[at:at + local.size]
                at += local.size


class CopiedGrads(GroupSum):
    """Sums the gradients of copied key/value heads over the ranks holding the copies.

    Collective at construction over the tensor group ``tp_comm`` (a sub-communicator of the
    ranks sharing heads), and in :meth:`sum` over that sub-group.
    """

    def __init__(self, model: ModelSpec, tp: int, tp_rank: int, flat: FlatParams,
                 tp_comm: Any, timers: Timers) -> None:
        copies = copies_per_head(model, tp)
        super().__init__(np.flatnonzero(copied_mask(model, flat, tp, tp_rank)),
                         tp_comm.Split(tp_rank // copies, tp_rank) if copies > 1 else None,
                         timers)
