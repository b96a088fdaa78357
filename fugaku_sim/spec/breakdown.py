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
"""

from __future__ import annotations

BREAKDOWN_KEYS = ("compute", "recompute", "tp_comm", "pp_comm", "dp_comm", "bubble", "optimizer")
#: the term that is not measured directly but is what is left of the step
BUBBLE = "bubble"
#: the keys an engine charges time to (everything but the bubble)
CHARGED_KEYS = tuple(k for k in BREAKDOWN_KEYS if k != BUBBLE)
#: short column labels for narrow tables, by key
SHORT_LABELS = {"compute": "comp", "recompute": "recomp", "tp_comm": "tp", "pp_comm": "pp",
                "dp_comm": "dp", "bubble": "bub", "optimizer": "opt"}

#: the kinds a rank's memory is split into, the same for a prediction and a measured run:
#: ``weights`` (parameters held, a ZeRO-3 shard included), ``gradients``, ``optimizer``
#: (states), ``activations`` (what is kept for the backward, every micro-batch in flight),
#: ``workspace`` (temporaries of the op running, communication buffers, gathered ZeRO-3
#: layers), ``framework`` (what the process holds before the model: interpreter, libraries,
#: runtime). How the trainer measures them: :mod:`fugaku_sim.train.memory`.
MEMORY_KEYS = ("weights", "gradients", "optimizer", "activations", "workspace", "framework")
