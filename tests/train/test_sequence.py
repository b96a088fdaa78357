"""Sequence parallelism's pieces in the trainer: the contiguous chunks along T, which tensors
have their gradients summed over the tensor group, and the collectives over real MPI
(``mpi_sequence.py`` under ``mpiexec -n 1, 2, 4``: gather and reduce-scatter against their
definitions, each the other's adjoint, a whole model against the single rank)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors import tensor_table
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.sequence import (
    SequenceParallelGrads,
    from_sequence_chunks,
    replicated_index,
    sequence_chunks,
)
from fugaku_sim.train.stage import local_entries, stage_tensor_names
from fugaku_sim.train.timers import Timers

from .mpi_job import MPIEXEC, REPO, env

SPEC = ModelSpec(name="s", layers=2, hidden=8, heads=2, seq_len=8, vocab=16, ffn_hidden=16)


@pytest.mark.parametrize("b", [1, 3])
def test_chunks_hold_each_ranks_tokens_and_come_back(b: int) -> None:
    x = np.arange(b * 8 * 3, dtype=np.float32).reshape(b, 8, 3)  # [B, T, C]
    chunks = sequence_chunks(x, 4)
    assert chunks.shape == (4, b, 2, 3) and chunks.flags.c_contiguous
    for r in range(4):
        np.testing.assert_array_equal(chunks[r], x[:, 2 * r:2 * r + 2])
    np.testing.assert_array_equal(from_sequence_chunks(chunks), x)
    assert np.shares_memory(chunks, x) == (b == 1)  # a view when B = 1, no copy
    with pytest.raises(ValueError, match="do not divide"):
        sequence_chunks(x, 3)


def _flat(layout: Layout) -> FlatParams:
    from fugaku_sim.tensors import layout_chunks

    names = stage_tensor_names(SPEC, layout_chunks(SPEC, layout, 0))
    return FlatParams(local_entries(SPEC, names, layout.tp))


def test_replicated_tensors_are_summed_under_sequence_parallelism_only() -> None:
    """The norms, row-parallel biases and positions: every ``rep`` tensor, nothing else."""
    layout = Layout(tp=2, sequence_parallel=True)
    flat, table = _flat(layout), tensor_table(SPEC)
    index = replicated_index(SPEC, flat)
    assert np.all(np.diff(index) > 0)
    marked = np.zeros(flat.padded, dtype=bool)
    marked[index] = True
    for name in flat.names:
        rep = table[name].split.kind == "rep"
        assert marked[slice(*flat.offsets[name])].all() == rep, name
        assert marked[slice(*flat.offsets[name])].any() == rep, name
    assert {table[n].role for n in flat.names if table[n].split.kind == "rep"} >= {
        "attn_norm", "mlp_norm", "attn_out_bias", "mlp_out_bias", "final_norm", "pos_embed"}
    off = SequenceParallelGrads(SPEC, Layout(tp=2), flat, None, Timers(lambda: 0.0))
    assert off.comm is None and off.index.size == 0


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec")
@pytest.mark.parametrize("n", [1, 2, 4])
def test_collectives_and_a_whole_model_under_mpi(n: int) -> None:
    cmd = [str(MPIEXEC), "-n", str(n), sys.executable,
           str(Path(__file__).with_name("mpi_sequence.py"))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env(), cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"passed on {n} ranks" in r.stdout
