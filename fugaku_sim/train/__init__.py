"""The real engine: a GPT-2 in numpy trained over MPI with tensor, pipeline and data
parallelism, driven by the same spec, rank groups and pipeline schedule as the simulator.

Modules, one concept each:

- ``layers``: forward/backward pairs (layer norm, linear, GELU, attention with an optional
  selective recomputation of its core, embeddings, vocabulary-parallel cross-entropy);
- ``model``: blocks, embedding and head from the layers; init; ``forward_logits``;
- ``stage``: the chunks and tensors one rank holds (names, shapes and tensor-parallel
  splits from :mod:`fugaku_sim.tensors`), full and selective recomputation;
- ``buffers``: flat parameter and gradient buffers in segments sharded over dp;
- ``sharding``: the segments for a ZeRO stage (gradient buckets, or ZeRO-3 units);
- ``weights``: where a layer finds its weights (the buffer, or a gathered ZeRO-3 unit);
- ``caches``: bytes a cache keeps, weights taken out of and put back into caches;
- ``memory``: the memory tracker (peak per rank by kind);
- ``comm``: communicators from ``RankGrid``, tensor all-reduce, pipeline messages;
- ``pipeline``: one step in the shared schedule's op order;
- ``grad_reduce``: bucketed (overlapped) data-parallel reduction; ZeRO-1 reduce-scatter once
  a step, ZeRO-2/3 reduce-scatter of every micro-batch's buckets into a gradient shard;
- ``optimizer``, ``lr_schedule``: AdamW/Adam/SGD, warm-up + cosine;
- ``loader``: blended Megatron-style samples from indexed shards;
- ``checkpoint``: sharded checkpoints, re-sharding, consolidation into the Hugging Face file;
- ``timers``, ``metrics``, ``events``: measured breakdown, metrics.jsonl and TensorBoard events,
  summary, progress lines;
- ``run_plan``: checking a run before anything is written; ``trainer``: the loop.
"""
