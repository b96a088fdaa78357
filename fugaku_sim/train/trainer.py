"""The training loop of one rank: set up from a checked plan, step, validate, checkpoint.

Per step (every rank, collective where it says so):

1. zero the gradients (the full buffer, or the ZeRO-2/3 shard); the first and last stage
   read their micro-batches;
2. run the stage's ops in schedule order (:class:`PipelineRunner`); the loss of each
   micro-batch is weighted 1 / (micro-batches x dp), so that summing over data-parallel ranks
   gives the gradient of the global batch's mean loss. Under ZeRO-3 each layer's weights are
   gathered for its forward and again for its backward (:mod:`fugaku_sim.train.weights`);
   under ZeRO-2/3 each micro-batch's gradient buckets are reduce-scattered as the backward
   completes them (:mod:`fugaku_sim.train.grad_reduce`);
3. finish the gradient reduction (tied embedding between stages, buckets over dp), then sum
   the gradients of key/value heads held in copies over the tensor ranks holding them
   (:mod:`fugaku_sim.train.copies`) and, under sequence parallelism, those of the tensors
   used on each rank's share of the sequence over the tensor group
   (:mod:`fugaku_sim.train.sequence`);
4. global gradient norm (every parameter counted once, all-reduce over the world), clip,
   optimizer update of what this rank owns (everything, or its ZeRO shard), then under
   ZeRO-1/2 the all-gather of the updated weights (ZeRO-3 keeps only its shard);
5. loss, slowest step time and mean breakdown over ranks; rank 0 writes the metrics line.

A step's time runs from a barrier at its start (every rank's clock starts together, after
rank 0 has logged the step before) to the end of its optimizer update on the slowest rank.

The first step is also measured for memory (:mod:`fugaku_sim.train.memory`): every rank's
peak by kind goes into that step's metrics line and into ``summary.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.io import write_json
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS, MEMORY_KEYS
from fugaku_sim.spec.figures import micro_batches_per_replica, tokens_per_step
from fugaku_sim.spec.record import LayoutRecord
from fugaku_sim.tensors import layout_chunks, tensor_table, tied_names
from fugaku_sim.train import checkpoint as ckpt
from fugaku_sim.train.comm import PipelineLinks, TensorAllReduce, build_comms
from fugaku_sim.train.copies import CopiedGrads, counted_ranges
from fugaku_sim.train.grad_reduce import GradReducer, ShardedGradReducer
from fugaku_sim.train.layers import megatron_region
from fugaku_sim.train.loader import BlendedSamples, open_split, rank_micro_batches
from fugaku_sim.train.lr_schedule import learning_rate
from fugaku_sim.train.memory import MemoryTracker
from fugaku_sim.train.metrics import MetricsLog, TrainProgress, summarize
from fugaku_sim.train.model import init_param
from fugaku_sim.train.optimizer import Optimizer
from fugaku_sim.train.pipeline import MicroBatch, PipelineRunner
from fugaku_sim.train.run_plan import Plan
from fugaku_sim.train.sequence import SequenceParallelGrads, sequence_parallel_region
from fugaku_sim.train.sharding import flat_buffer
from fugaku_sim.train.stage import StageModel, decay_names, stage_tensor_names
from fugaku_sim.train.timers import Timers
from fugaku_sim.train.weights import FullWeights, GatheredWeights


class InjectedFault(RuntimeError):
    """Raised by ``--fail-at-step`` to test that a failing rank takes the job down."""


class Trainer:
    """One rank's share of a training run described by a checked :class:`Plan`."""

    def __init__(self, plan: Plan, world: Any) -> None:
        from mpi4py import MPI

        self.plan, self.world = plan, world
        self.memory = mem = MemoryTracker()  # before anything is allocated
        model, train, layout = plan.model, plan.train, plan.layout
        self.comms = c = build_comms(world, layout)
        self.timers = Timers(MPI.Wtime)
        self.stage, self.tp_rank, self.dp_rank = c.coords.pp, c.coords.tp, c.coords.dp
        self.m = micro_batches_per_replica(train, layout)
        self.table = tensor_table(model)
        self.zero = train.zero_stage if layout.dp > 1 else 0  # nothing to shard over one rank
        chunks = layout_chunks(model, layout, self.stage)
        names = stage_tensor_names(model, chunks)
        tied = tied_names(model, layout) & set(names)
        self.flat, units = flat_buffer(model, train, layout, chunks, self.zero, tied)
        self.weights = (GatheredWeights(self.flat, units, c.dp, self.timers, mem)
                        if self.zero == 3 else FullWeights(self.flat, mem))
        reducer = ShardedGradReducer if self.zero >= 2 else GradReducer
        self.reducer = reducer(self.flat, c.dp, c.embed, self.zero, train.overlap_grad_reduce,
                               tied, self.timers, mem)
        self.optimizer = Optimizer(train, sum(p.size for p in self.reducer.update))
        mem.hold("optimizer", "optimizer states", self.optimizer.nbytes)
        decay = decay_names(model, names)
        self.decay_ranges = [self.flat.ranges_of(decay, p) for p in self.reducer.update]
        self.norm_ranges = [counted_ranges(model, self.flat, layout.tp, self.tp_rank, p)
                            for p in self.reducer.counted]
        self.copies = CopiedGrads(model, layout.tp, self.tp_rank, self.flat, c.tp, self.timers)
        self.sequence_grads = SequenceParallelGrads(model, layout, self.flat, c.tp, self.timers)
        allreduce = TensorAllReduce(c.tp, self.timers)
        region = (sequence_parallel_region(c.tp, self.timers, allreduce)
                  if layout.sequence_parallel else megatron_region(allreduce))
        self.sm = StageModel(model, layout, self.stage, self.tp_rank, self.flat,
                             self.stage in train.recompute_stage_set(layout.pp), self.timers,
                             region, selective=self.stage in train.selective_stage_set(
                                 layout.pp), weights=self.weights, grads=self.reducer.grads,
                             memory=mem)
        self.runner = PipelineRunner(model, layout, self.stage, c.pipeline_ranks, self.sm,
                                     PipelineLinks(world, self.timers, mem), self.timers, self.m)
        self.is_first = any(ch.first for ch in self.sm.chunks)
        self.is_last = any(ch.last for ch in self.sm.chunks)
        self.step = 0
        self.memory_report: dict[str, Any] | None = None
        self.train_set: BlendedSamples | None = None
        self.valid_set: BlendedSamples | None = None

    # ------------------------------------------------------------------ state

    def _set_weights(self, local: np.ndarray) -> None:
        """Take this rank's weights from ``local``, its full flat buffer (padded)."""
        if isinstance(self.weights, GatheredWeights):
            self.weights.shard[...] = self.flat.shard_of(local, self.weights.pieces)
        else:
            self.flat.data[...] = local

    def _local_flat(self, full: dict[str, np.ndarray]) -> np.ndarray:
        """This rank's flat buffer of the full tensors ``full`` (a tied copy reads what it
        copies)."""
        p, local = self.plan, np.zeros(self.flat.padded, dtype=np.float32)
        for name in self.flat.names:
            s, e = self.flat.offsets[name]
            local[s:e] = ckpt.local_part(self.table, name, full, p.layout.tp,
                                         self.tp_rank).ravel()
        return local

    def init_params(self) -> None:
        """The family's initialisation of this rank's parts (layout-independent values)."""
        p = self.plan
        full = {self.table.source(n): init_param(n, p.model, p.train.seed)
                for n in self.flat.names}
        self._set_weights(self._local_flat(full))

    def load(self, state: ckpt.GlobalState) -> None:
        """Resume from the full tensors of a checkpoint of any layout and ZeRO stage
        (re-sharding them; read and checked by :func:`ckpt.read_global_state`)."""
        self._set_weights(self._local_flat(state.params))
        for full, target in ((state.exp_avg, self.optimizer.exp_avg),
                             (state.exp_avg_sq, self.optimizer.exp_avg_sq)):
            if target.size and full:
                target[...] = self.flat.shard_of(self._local_flat(full), self.reducer.update)
        self.step = state.step

    def rank_state(self) -> ckpt.RankState:
        keep_opt = self.zero > 0 or self.dp_rank == 0
        flat = [(n, *self.flat.offsets[n], self.flat.shapes[n]) for n in self.flat.names]
        opt = self.optimizer
        params = {}
        if self.zero < 3 and self.dp_rank == 0:
            params = {n: v for n, v in self.flat.params.items() if self.table[n].tied_to is None}
        return ckpt.RankState(
            self.tp_rank, self.stage, self.dp_rank, flat, self.flat.padded, params,
            [(piece.start, piece.end) for piece in self.reducer.update],
            opt.exp_avg if keep_opt and opt.exp_avg.size else None,
            opt.exp_avg_sq if keep_opt and opt.exp_avg_sq.size else None,
            self.weights.shard if isinstance(self.weights, GatheredWeights) else None)

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (collective); returns its directory."""
        final = ckpt.step_dir(self.plan.opts.out, self.step)
        tmp = final.with_name(f".{final.name}.tmp")
        if self.world.rank == 0:
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.world.Barrier()
        infos = self.world.gather(ckpt.write_rank_file(tmp, self.rank_state()), root=0)
        if self.world.rank == 0:
            files = dict(i for i in infos if i is not None)
            p = self.plan
            header = {"step": self.step, "model": p.model.model_dump(mode="json"),
                      "train": p.train.model_dump(mode="json"),
                      "layout": p.layout.model_dump(mode="json"), "world": self.world.size}
            ckpt.write_index(tmp, header, files)
            ckpt.publish(tmp, final)
            ckpt.prune_checkpoints(p.opts.out, p.opts.keep_checkpoints)
        self.world.Barrier()
        return final

    # ------------------------------------------------------------------ data

    def open_data(self) -> None:
        p = self.plan
        model, train = p.model, p.train
        if self.is_first or self.is_last:
            self.train_set = open_split(p.blend.shards("train", p.opts.data), "train",
                                        model.seq_len, train.seed,
                                        p.steps * train.global_batch, model.vocab)
            self.valid_set = open_split(p.blend.shards("valid", p.opts.data), "valid",
                                        model.seq_len, train.seed,
                                        p.opts.eval_iters * train.global_batch, model.vocab)
        flag = np.array([1 if self.valid_set is not None else 0], dtype=np.int64)
        from mpi4py import MPI

        self.world.Allreduce(MPI.IN_PLACE, flag, op=MPI.MAX)
        self.has_valid = bool(flag[0])

    def _batches(self, samples: BlendedSamples | None, start: int) -> list[MicroBatch] | None:
        if samples is None:
            return None
        gb, dp = self.plan.train.global_batch, self.plan.layout.dp
        share = gb // dp
        rows = samples.batch(start + self.dp_rank * share, share)
        if rows.max() >= self.plan.model.vocab:
            raise ValueError(f"token id {rows.max()} is outside model.vocab")
        return rank_micro_batches(rows, 1, 0, self.plan.train.micro_batch)

    # ------------------------------------------------------------------ step

    def train_step(self) -> dict[str, Any]:
        """One optimizer step (collective); returns its metrics record."""
        from mpi4py import MPI

        p = self.plan
        # every rank's clock starts together, as Megatron-LM starts its iteration timer
        # (``timers("interval-time").start(barrier=True)``): else the ranks that do not log
        # start the step while rank 0 still writes the last one's metrics, and wait for it
        # in their first collective, inside the step's time
        self.world.Barrier()
        t0 = MPI.Wtime()
        self.timers.reset()
        self.memory.start_step()
        batches = self._batches(self.train_set, self.step * p.train.global_batch)
        dloss = 1.0 / (self.m * p.layout.dp)
        loss_sum = self.runner.train_step(batches, p.train.micro_batch, dloss, self.reducer)
        self.reducer.finish()
        owned = [(self.reducer.grad(p), p.start) for p in self.reducer.update]
        self.copies.sum(owned)
        self.sequence_grads.sum(owned)
        lr = learning_rate(self.step, p.train, p.steps)
        with self.timers.region("optimizer"), self.memory.region():
            norm = self.clip_and_update(lr)
        if self.zero in (1, 2):  # every rank updated its shard: gather the weights
            with self.timers.region("dp_comm"):
                MPI.Request.Waitall([self.comms.dp.Iallgather(MPI.IN_PLACE,
                                                              self.flat.data[s:e])
                                     for s, e in self.flat.segments])
        step_time = MPI.Wtime() - t0
        measured = self.memory.measuring
        self.memory.end_step()
        self.step += 1
        record = self._record(loss_sum, norm, lr, step_time)
        if measured:
            self.memory_report = self._gather_memory()
            record["memory_peak_bytes"] = self.memory_report["memory_peak_bytes"]
        return record

    def clip_and_update(self, lr: float) -> float:
        """Global gradient norm (each parameter once), clipping, update; returns the norm."""
        from mpi4py import MPI

        r = self.reducer
        sq = np.array([sum(float(np.dot(g[lo:hi], g[lo:hi]))
                           for piece, ranges in zip(r.counted, self.norm_ranges)
                           for g in (r.grad(piece),) for lo, hi in ranges)], dtype=np.float64)
        self.world.Allreduce(MPI.IN_PLACE, sq, op=MPI.SUM)
        norm = float(np.sqrt(sq[0]))
        clip = self.plan.train.grad_clip
        scale = np.float32(clip / (norm + 1e-6)) if clip > 0 and norm > clip else None
        for piece, decay in zip(r.update, self.decay_ranges):
            grad = r.grad(piece)
            if scale is not None:
                grad *= scale
            self.optimizer.step(self.weights.param(piece), grad, decay, lr, self.step + 1,
                                piece.shard_start)
        return norm

    def _record(self, loss_sum: float, norm: float, lr: float, step_time: float
                ) -> dict[str, Any]:
        from mpi4py import MPI

        p = self.plan
        counts_loss = self.is_last and self.tp_rank == 0
        times = self.timers.reset()
        sums = np.array([loss_sum if counts_loss else 0.0, *(times[k] for k in BREAKDOWN_KEYS)])
        self.world.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        slowest = np.array([step_time])
        self.world.Allreduce(MPI.IN_PLACE, slowest, op=MPI.MAX)
        tokens = tokens_per_step(p.train, p.model)
        return {
            "step": self.step, "loss": float(sums[0]) / (self.m * p.layout.dp),
            "lr": lr, "grad_norm": norm, "tokens": tokens,
            "tokens_per_s": tokens / float(slowest[0]), "step_time_s": float(slowest[0]),
            "breakdown_s": {k: float(v) / self.world.size
                            for k, v in zip(BREAKDOWN_KEYS, sums[1:])},
        }

    def _gather_memory(self) -> dict[str, Any]:
        """Every rank's measured memory peak (collective; see :mod:`fugaku_sim.train.memory`):
        the fullest rank's by kind, and every rank's with its coordinates (bytes)."""
        mine = {"rank": self.world.rank, "tp": self.tp_rank, "stage": self.stage,
                "dp": self.dp_rank, **self.memory.report()}
        ranks = self.world.allgather(mine)
        # the fullest by what the model holds: the framework's resident memory is noise here
        fullest = max(ranks, key=lambda r: r["total"] - r["framework"])
        return {"memory_measured_step": self.step,
                "memory_peak_bytes": {k: fullest[k] for k in (*MEMORY_KEYS, "total")},
                "memory_by_rank": ranks}

    def validate(self) -> float:
        """Mean loss over ``eval_iters`` global batches of the valid split (collective)."""
        from mpi4py import MPI

        p = self.plan
        total, count = 0.0, 0
        for i in range(p.opts.eval_iters):
            batches = self._batches(self.valid_set, i * p.train.global_batch)
            total += self.runner.evaluate(batches, p.train.micro_batch, self.m)
            count += self.m * p.layout.dp
        counts = self.is_last and self.tp_rank == 0
        buf = np.array([total if counts else 0.0])
        self.world.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        self.timers.reset()
        return float(buf[0]) / count

    # ------------------------------------------------------------------ run

    def maybe_fail(self) -> None:
        o = self.plan.opts
        rank = o.fail_rank if o.fail_rank is not None else self.world.size - 1
        if o.fail_at_step is not None and self.step + 1 == o.fail_at_step \
                and self.world.rank == rank:
            if o.fail_mode == "exit":
                os._exit(17)  # a rank that dies without a word
            raise InjectedFault(f"injected fault at step {o.fail_at_step} (--fail-at-step)")

    def run(self, state: ckpt.GlobalState | None = None) -> dict[str, Any]:
        """Train to the plan's step count (or --steps-per-job steps of it), from ``state``
        (the checkpoint of ``plan.resume``, read on this rank) or afresh; returns the summary
        (rank 0; others get {}), or where a chain job stopped."""
        p, rank0 = self.plan, self.world.rank == 0
        if state is not None:
            self.load(state)
        else:
            self.init_params()
        start = self.step
        if rank0:
            p.opts.out.mkdir(parents=True, exist_ok=True)
            stale = p.opts.out / "checkpoints"
            if p.opts.resume == "never" and stale.exists():
                import shutil

                print(f"fugaku-sim: --resume never: removing old checkpoints in {stale}",
                      file=sys.stderr, flush=True)
                shutil.rmtree(stale)
        self.world.Barrier()
        self.open_data()
        log = MetricsLog(p.opts.out / "metrics.jsonl", start) if rank0 else None
        bar = TrainProgress(p.steps, start, p.opts.progress and rank0, p.opts.log_interval)
        saved_at = start if p.resume.directory is not None else -1
        # one job of a chain trains its share and leaves the rest to the next (--steps-per-job)
        stop = p.steps if p.opts.steps_per_job is None else min(p.steps,
                                                                 start + p.opts.steps_per_job)
        while self.step < stop:
            self.maybe_fail()
            record = self.train_step()
            every = p.opts.eval_every
            if self.has_valid and (self.step == p.steps or (every and self.step % every == 0)):
                record["val_loss"] = self.validate()
            if log is not None:
                log.write(record)
            bar.update(record)
            if p.opts.checkpoint_every and self.step % p.opts.checkpoint_every == 0:
                self.save_checkpoint()
                saved_at = self.step
        bar.close()
        final = ckpt.step_dir(p.opts.out, self.step) if saved_at == self.step \
            else self.save_checkpoint()
        if self.step < p.steps:  # the run goes on in the next job: no summary, no release file
            if log is not None:
                log.close()
            return {"stopped_at_step": self.step, "steps": p.steps, "checkpoint": str(final)}
        return self.finish(final, log, start) if rank0 else {}

    def finish(self, final: Path, log: MetricsLog | None, start: int) -> dict[str, Any]:
        """Rank 0: consolidated Hugging Face file and summary.json."""
        p = self.plan
        ckpt.consolidate(final, p.opts.out / "model.safetensors", p.model)
        records = log.records if log is not None else []
        if log is not None:
            log.close()
        summary = {
            "model": p.model.model_dump(mode="json"),
            **LayoutRecord(p.layout, p.train).to_json(),  # what --layout-from reads back
            "world": self.world.size, "steps": self.step,
            "tokens": self.step * tokens_per_step(p.train, p.model),
            "resumed_from_step": start if p.resume.directory is not None else None,
            "checkpoint": str(final), "consolidated": str(p.opts.out / "model.safetensors"),
            **summarize(records, p.opts.warmup_timing_steps),
            "breakdown_aggregation": "mean over ranks per step, then mean over steps",
            **(self.memory_report or {}),
        }
        write_json(p.opts.out / "summary.json", summary)
        return summary

