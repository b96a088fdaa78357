"""The real engine: a GPT-2 or a Llama in numpy trained over MPI with tensor (optionally
sequence), pipeline and data parallelism, driven by the same spec, rank groups and pipeline schedule as the
simulator.

Modules, one concept each:

- ``layers``: forward/backward pairs (layer norm, linear, GELU, attention with an optional
  selective recomputation of its core, embeddings, vocabulary-parallel cross-entropy) and
  the tensor-parallel region's operators;
- ``llama_layers``: RMSNorm, ``nn.Linear`` weights, SwiGLU, rotary positions,
  grouped-query attention;
- ``params``: parameters by name and role, a tensor rank's share of heads and vocabulary;
- ``model``: the GPT-2 block, embedding and head from the layers; init; ``forward_logits``;
  ``llama_block``: the Llama decoder layer;
- ``stage``: the chunks and tensors one rank holds (names, shapes and tensor-parallel
  splits from :mod:`fugaku_sim.tensors`), full and selective recomputation;
- ``buffers``: flat parameter and gradient buffers in segments sharded over dp;
- ``copies``: key/value heads held in copies (their gradients summed, counted once in the
  gradient norm), and the sum of chosen gradient elements over a group;
- ``sequence``: sequence parallelism's all-gather and reduce-scatter along T over the tensor
  group, and the sum of the replicated tensors' gradients over it;
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
