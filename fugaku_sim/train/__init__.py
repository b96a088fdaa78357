"""The real engine: a GPT-2 in numpy trained over MPI with tensor, pipeline and data
parallelism, driven by the same spec, rank groups and pipeline schedule as the simulator.

Modules, one concept each:

- ``layers``: forward/backward pairs (layer norm, linear, GELU, attention, embeddings,
  vocabulary-parallel cross-entropy);
- ``model``: blocks, embedding and head from the layers; init; ``forward_logits``;
- ``stage``: the chunks and tensors one rank holds (names, shapes and tensor-parallel
  splits from :mod:`fugaku_sim.tensors`), recomputation;
- ``buffers``: flat parameter and gradient buffers;
- ``comm``: communicators from ``RankGrid``, tensor all-reduce, pipeline messages;
- ``pipeline``: one step in the shared schedule's op order;
- ``grad_reduce``: bucketed (overlapped) data-parallel reduction, ZeRO-1 reduce-scatter;
- ``optimizer``, ``lr_schedule``: AdamW/Adam/SGD, warm-up + cosine;
- ``loader``: blended Megatron-style samples from indexed shards;
- ``checkpoint``: sharded checkpoints, re-sharding, consolidation into the Hugging Face file;
- ``timers``, ``metrics``, ``events``: measured breakdown, metrics.jsonl and TensorBoard events,
  summary, progress lines;
- ``run_plan``: checking a run before anything is written; ``trainer``: the loop.
"""
