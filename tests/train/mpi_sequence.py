"""The trainer's sequence-parallel collectives over real MPI, checked on every rank.

Usage: ``mpiexec -n N python tests/train/mpi_sequence.py`` (N = 1, 2, 4; run by
``test_sequence.py``). Expected values follow from the communicator size. With the world as
the tensor group:

- the all-gather along T gives every rank the concatenation of the ranks' tokens, and the
  reduce-scatter this rank's T / N tokens of the sum (B = 1, where the chunks are views, and
  B = 3, where they are reordered copies; float32 and float64);
- the two are each other's adjoint: sum over ranks of <gather(x), y> = sum of <x, RS(y)>,
  which is why the region's backward is right;
- a whole sequence-parallel GPT-2 and Llama model over the world gives the single-rank loss
  and gradients in float64 (the replicated tensors' summed over the ranks, as the trainer's
  ``SequenceParallelGrads`` does).

Exits non-zero (an uncaught assertion on some rank aborts the job) on any mismatch.
"""

from __future__ import annotations

import sys

import numpy as np


def check_collectives(comm: object) -> None:
    from mpi4py import MPI

    from fugaku_sim.train.sequence import SequenceCollectives
    from fugaku_sim.train.timers import Timers

    assert isinstance(comm, MPI.Comm)
    n, r = comm.size, comm.rank
    ops = SequenceCollectives(comm, Timers(MPI.Wtime))
    for dtype, rtol in ((np.float32, 1e-6), (np.float64, 1e-13)):
        for b in (1, 3):
            rng = np.random.default_rng([r, b])
            x = rng.standard_normal((b, 5, 4)).astype(dtype)  # [B, T', C]
            y = rng.standard_normal((b, 5 * n, 4)).astype(dtype)  # [B, T, C]
            xs, ys = comm.allgather(x), comm.allgather(y)
            gathered = ops.gather(x)
            assert gathered.dtype == dtype
            np.testing.assert_array_equal(gathered, np.concatenate(xs, axis=1))
            scattered = ops.reduce_scatter(y)
            want = np.sum(ys, axis=0)[:, r * 5:(r + 1) * 5]
            np.testing.assert_allclose(scattered, want, rtol=rtol, atol=rtol)
            lhs = comm.allreduce(float(np.vdot(gathered.astype(np.float64), y)))
            rhs = comm.allreduce(float(np.vdot(x.astype(np.float64), scattered)))
            assert abs(lhs - rhs) <= 10 * rtol * (abs(lhs) + 1), (lhs, rhs)


def check_model(comm: object) -> None:
    from mpi4py import MPI

    from fugaku_sim.spec import ModelSpec
    from fugaku_sim.tensors import tensor_table
    from fugaku_sim.train import model as M
    from fugaku_sim.train.comm import TensorAllReduce
    from fugaku_sim.train.sequence import sequence_parallel_region
    from fugaku_sim.train.timers import Timers
    from tests.train.test_model import params64, rank_loss_and_grads, tiny_batch

    assert isinstance(comm, MPI.Comm)
    timers = Timers(MPI.Wtime)
    gpt2 = ModelSpec(name="g", layers=2, hidden=8, heads=4, seq_len=8, vocab=16,
                     ffn_hidden=16)
    llama = ModelSpec(name="l", layers=2, hidden=16, heads=4, ffn_hidden=24, seq_len=8,
                      vocab=16, norm="rmsnorm", mlp="swiglu", positions="rotary", bias=True,
                      tied_embeddings=False)
    for spec in (gpt2, llama):
        params = params64(spec)
        tokens, targets = tiny_batch(spec)
        loss, grads = M.loss_and_grads(params, spec, tokens, targets)
        region = sequence_parallel_region(comm, timers, TensorAllReduce(comm, timers))
        got_loss, got = rank_loss_and_grads(spec, params, tokens, targets, comm.size,
                                            comm.rank, region)
        assert abs(got_loss - loss) <= 1e-12 * abs(loss), (spec.name, got_loss, loss)
        table = tensor_table(spec)
        for name, full in grads.items():
            mine = got[name]
            if table[name].split.kind == "rep":
                mine = comm.allreduce(mine)  # the trainer's sum over the tensor group
            np.testing.assert_allclose(mine, table.shard(name, full, comm.size, comm.rank),
                                       rtol=1e-9, atol=1e-12, err_msg=f"{spec.name} {name}")


def main() -> int:
    from mpi4py import MPI

    check_collectives(MPI.COMM_WORLD)
    check_model(MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        print(f"sequence-parallel checks passed on {MPI.COMM_WORLD.size} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
