"""The terms a training step's time is split into, the same for a prediction and a measured run.

``predict --json``'s ``breakdown_s`` (shared/DESIGN.md's contract), the trainer's
``metrics.jsonl`` and ``summary.json``, the predicted-vs-measured tables and the plots all
use these keys, in this order:

- ``compute``: forward and backward arithmetic;
- ``recompute``: forward arithmetic re-run before backward on recomputing stages;
- ``tp_comm``: tensor-parallel all-reduces;
- ``pp_comm``: sends and receives between pipeline neighbours (and the tied-embedding
  all-reduce in the trainer);
- ``dp_comm``: gradient reduction over the data-parallel group not hidden behind backward;
- ``bubble``: waiting for a pipeline neighbour, the rest of the step;
- ``optimizer``: gradient norm, clipping and the parameter update.

How each engine charges time to them is documented where it does so
(:mod:`fugaku_sim.sim.predict`, :mod:`fugaku_sim.train.timers`).

A rank's peak memory is split into :data:`MEMORY_KEYS`, the same for the simulator's
prediction (:mod:`fugaku_sim.sim.memory`) and the trainer's tracked peak:

- ``weights``: parameters at the training precision (the rank's ZeRO-3 shard, plus the
  layers gathered at once);
- ``gradients``: their gradients (the ZeRO-2/3 shard, plus the bucket being reduced);
- ``optimizer``: optimizer states and the fp32 master copy of 16-bit weights (sharded from
  ZeRO-1 on);
- ``activations``: what the forward passes in flight keep for their backward;
- ``workspace``: transient buffers of the pass at the peak (the layer being recomputed,
  logits, GEMM temporaries);
- ``framework``: what the software stack itself holds per rank (runtime, communicator
  buffers, allocator caches).
"""

from __future__ import annotations

BREAKDOWN_KEYS = ("compute", "recompute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer")
#: the term that is not measured directly but is what is left of the step
BUBBLE = "bubble"
#: the keys an engine charges time to (everything but the bubble)
CHARGED_KEYS = tuple(k for k in BREAKDOWN_KEYS if k != BUBBLE)
#: the parts a rank's peak memory is split into, in this order
MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "workspace", "framework")
#: short column labels for narrow tables, by key
SHORT_LABELS = {"compute": "comp", "recompute": "recomp", "tp_comm": "tp", "pp_comm": "pp",
                "dp_comm": "dp", "bubble": "bub", "optimizer": "opt"}
