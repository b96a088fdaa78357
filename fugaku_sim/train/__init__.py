"""The real engine: a GPT-2 or a Llama in numpy trained over MPI with tensor, pipeline and
data parallelism, driven by the same spec, rank groups and pipeline schedule as the
simulator.

Modules, one concept each:

- ``layers``: forward/backward pairs (layer norm, linear, GELU, attention, embeddings,
  vocabulary-parallel cross-entropy) and the tensor-parallel region's operators;
- ``llama_layers``: RMSNorm, ``nn.Linear`` weights, SwiGLU, rotary positions,
  grouped-query attention;
- ``params``: parameters by name and role, a tensor rank's share of heads and vocabulary;
- ``model``: the GPT-2 block, embedding and head from the layers; init; ``forward_logits``;
  ``llama_block``: the Llama decoder layer;
- ``stage``: the chunks and tensors one rank holds (names, shapes and tensor-parallel
  splits from :mod:`fugaku_sim.tensors`), recomputation;
- ``buffers``: flat parameter and gradient buffers; ``copies``: key/value heads held in
  copies (their gradients summed, counted once in the gradient norm);
- ``comm``: communicators from ``RankGrid``, tensor all-reduce, pipeline messages;
- ``pipeline``: one step in the shared schedule's op order;
- ``grad_reduce``: bucketed (overlapped) data-parallel reduction, ZeRO-1 reduce-scatter;
- ``optimizer``, ``lr_schedule``: AdamW/Adam/SGD, warm-up + cosine;
- ``loader``: blended Megatron-style samples from indexed shards;
- ``checkpoint``: sharded checkpoints, re-sharding, consolidation into the Hugging Face file;
- ``timers``, ``metrics``: measured breakdown, metrics.jsonl, summary, progress bar;
- ``run_plan``: checking a run before anything is written; ``trainer``: the loop.
"""
