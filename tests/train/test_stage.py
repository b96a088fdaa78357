"""A rank's stage: which tensors it holds, recomputation, and the gradient-norm bookkeeping."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fugaku_sim.spec import Layout, ModelSpec, TrainSpec
from fugaku_sim.tensors import LM_HEAD, WPE, WTE, layout_chunks
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.grad_reduce import ShardedGradReducer
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.model import init_params, loss_and_grads
from fugaku_sim.train.sharding import flat_buffer
from fugaku_sim.train.stage import (
    StageModel,
    decay_names,
    local_entries,
    norm_names,
    stage_tensor_names,
)
from fugaku_sim.train.timers import Timers
from fugaku_sim.train.weights import GatheredWeights

from .helpers import SelfComm

SPEC = ModelSpec(name="t", layers=4, hidden=16, heads=2, seq_len=8, vocab=32)


def test_tensors_by_stage() -> None:
    layout = Layout(pp=2)
    first = stage_tensor_names(SPEC, layout_chunks(SPEC, layout, 0))
    last = stage_tensor_names(SPEC, layout_chunks(SPEC, layout, 1))
    assert first[:2] == [WTE, WPE] and LM_HEAD not in first
    assert last[-1] == LM_HEAD and "transformer.ln_f.weight" in last
    assert {n.split(".")[2] for n in first if n.startswith("transformer.h.")} == {"0", "1"}
    inter = Layout(pp=2, schedule="interleaved", virtual_stages=2)
    chunks = layout_chunks(SPEC, inter, 0)
    assert [(c.layers, c.first, c.last) for c in chunks] == [(range(0, 1), True, False),
                                                             (range(2, 3), False, False)]
    single = stage_tensor_names(SPEC, layout_chunks(SPEC, Layout(), 0))
    assert LM_HEAD not in single and single.count(WTE) == 1


def test_norm_and_decay_sets() -> None:
    names = [WTE, WPE, "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.0.attn.c_proj.bias", LM_HEAD]
    assert norm_names(SPEC, names, 0) == set(names) - {LM_HEAD}
    assert norm_names(SPEC, names, 1) == {WTE, "transformer.h.0.attn.c_attn.weight"}
    assert decay_names(SPEC, names) == {WTE, WPE, "transformer.h.0.attn.c_attn.weight", LM_HEAD}


def run_stage(recompute: bool, selective: bool = False) -> tuple[float, np.ndarray, Timers]:
    layout = Layout()
    names = stage_tensor_names(SPEC, layout_chunks(SPEC, layout, 0))
    flat = FlatParams(local_entries(SPEC, names, 1))
    params = init_params(SPEC, 5)
    for n in names:
        flat.params[n][...] = params[n]
    timers = Timers()
    sm = StageModel(SPEC, layout, 0, 0, flat, recompute, timers, selective=selective)
    rng = np.random.default_rng(0)
    seq = rng.integers(0, SPEC.vocab, size=(2, 2, SPEC.seq_len + 1))
    loss = 0.0
    for mb in range(2):  # two micro-batches in flight, as in a pipeline
        loss += float(sm.forward(sm.chunks[0], mb, seq[mb, :, :-1], seq[mb, :, 1:]))
    ready: list[str] = []
    for mb in range(2):
        sm.backward(sm.chunks[0], mb, None, 0.5, ready.extend)
    assert sm.pending() == 0
    assert set(ready) >= set(names)
    return loss, flat.grad.copy(), timers


def run_zero3_stage(recompute: bool, selective: bool) -> tuple[float, np.ndarray,
                                                              MemoryTracker]:
    """:func:`run_stage` with ZeRO-3's machinery over one data-parallel rank: weights kept
    as a shard and gathered unit by unit (a new buffer each time), gradients reduced into a
    shard by buckets; returns the loss, the gradients in flat order and the tracker."""
    layout = Layout()
    chunks = layout_chunks(SPEC, layout, 0)
    flat, units = flat_buffer(SPEC, TrainSpec(global_batch=4), layout, chunks, 3, frozenset())
    assert flat.data.size == 0 and flat.grad.size == 0  # nothing full on this rank
    params = init_params(SPEC, 5)
    mem, timers, comm = MemoryTracker(), Timers(), SelfComm()
    try:
        weights = GatheredWeights(flat, units, comm, timers, mem)
        for n in flat.names:
            s, e = flat.offsets[n]
            weights.shard[s:e] = params[n].ravel()
        reducer = ShardedGradReducer(flat, comm, None, 3, False, frozenset(), timers, mem)
        sm = StageModel(SPEC, layout, 0, 0, flat, recompute, timers, selective=selective,
                        weights=weights, grads=reducer.grads, memory=mem)
        reducer.start_step()
        mem.start_step()
        rng = np.random.default_rng(0)
        seq = rng.integers(0, SPEC.vocab, size=(2, 2, SPEC.seq_len + 1))
        loss = 0.0
        for mb in range(2):
            loss += float(sm.forward(sm.chunks[0], mb, seq[mb, :, :-1], seq[mb, :, 1:]))
        shard = weights.shard.nbytes
        assert mem.held["activations"] > 0 and mem.held["weights"] > shard  # the root
        for mb in range(2):
            sm.backward(sm.chunks[0], mb, None, 0.5,
                        functools.partial(reducer.grads_ready, final=mb == 1))
        reducer.finish()
    finally:
        mem.end_step()
    # every cache, gathered unit and gradient bucket freed
    assert mem.held["activations"] == mem.held["workspace"] == 0
    assert mem.held["weights"] == mem.held["gradients"] == shard
    grad = np.zeros(flat.padded, dtype=np.float32)
    for piece in reducer.update:
        grad[piece.start:piece.end] = reducer.grad(piece)
    return loss, np.concatenate([grad[slice(*flat.offsets[n])] for n in
                                 stage_tensor_names(SPEC, chunks)]), mem


@pytest.mark.parametrize(("recompute", "selective"), [(False, False), (True, False),
                                                      (False, True)])
def test_zero3_units_give_the_same_numbers(recompute: bool, selective: bool) -> None:
    loss, grad, _ = run_stage(False)
    loss3, grad3, mem = run_zero3_stage(recompute, selective)
    assert loss == loss3
    # each micro-batch's gradients are summed in its bucket before joining the shard: the
    # tied embedding (head, then embedding) adds in another order than in one buffer
    np.testing.assert_allclose(grad3, grad, rtol=1e-5, atol=1e-8)
    peak = mem.report()  # dp = 1: the shard is everything; gathered units and buckets more
    assert peak["weights"] > grad.nbytes and peak["gradients"] > grad.nbytes


def test_selective_recompute_keeps_less_and_gives_the_same_numbers() -> None:
    loss, grad, _ = run_stage(False)
    loss_s, grad_s, timers = run_stage(False, selective=True)
    assert loss == loss_s and timers.seconds["recompute"] > 0
    np.testing.assert_array_equal(grad, grad_s)
    full = run_zero3_stage(False, False)[2].report()
    selective = run_zero3_stage(False, True)[2].report()
    # two micro-batches in flight keep [B, H, T, T] probabilities of every layer
    probs = 2 * 2 * SPEC.heads * SPEC.seq_len**2 * 4 * SPEC.layers
    assert full["activations"] - selective["activations"] == probs


def test_recompute_gives_the_same_numbers() -> None:
    loss, grad, timers = run_stage(False)
    loss_r, grad_r, timers_r = run_stage(True)
    assert loss == loss_r
    np.testing.assert_array_equal(grad, grad_r)
    assert timers.seconds["recompute"] == 0 and timers_r.seconds["recompute"] > 0


def test_stage_matches_the_reference_model() -> None:
    """The stage's accumulated gradient of two half-weighted micro-batches equals the
    single-rank gradient of their mean loss."""
    loss, grad, _ = run_stage(False)
    params = init_params(SPEC, 5)
    rng = np.random.default_rng(0)
    seq = rng.integers(0, SPEC.vocab, size=(2, 2, SPEC.seq_len + 1)).reshape(4, -1)
    ref_loss, ref = loss_and_grads(params, SPEC, seq[:, :-1], seq[:, 1:])
    assert loss / 2 == pytest.approx(ref_loss, rel=1e-5)
    names = stage_tensor_names(SPEC, layout_chunks(SPEC, Layout(), 0))
    flat = FlatParams(local_entries(SPEC, names, 1))
    flat.grad[:] = grad
    for n in names:
        np.testing.assert_allclose(flat.grads[n], ref[n], rtol=1e-4, atol=1e-6, err_msg=n)
