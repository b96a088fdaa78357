"""Upper limits on the sizes a spec may ask for, each far above any published model or
machine, so a typo (an extra zero, ``1e30``) is an error naming the field rather than an hour
of enumeration, an out-of-memory kill or a traceback.

Each limit is the largest figure in use that we know of times a margin; the references are
the published configurations of the largest models and machines:

- layers: GPT-1T (Narayanan et al., SC21, table 1) and Llama-3.1-405B have 128 and 126; 1,024
  leaves 8x. Every engine walks the layers (the tensor table lists each one).
- hidden: GPT-1T 25,600; 2^20 leaves 40x. MLP width: Llama-3.1-405B 53,248; 2^22 leaves 78x.
- sequence: 1M-token contexts are trained (Llama-4 and Gemini report longer at inference
  only); 2^24 leaves 16x.
- vocabulary: Gemma's 256,000 is among the largest; 2^24 leaves 65x (and keeps token ids
  within int32, which the Megatron shards use above 65,500 ids).
- global batch: 2^24 sequences (PaLM's largest was 2,048 of 2,048 tokens).
- tokens: 10^15, 66x Llama 3's 15T.
- steps, warm-up steps: 10^9 (Fugaku-LLM ran 92,038).
- nodes of a machine: 2^21 = 2,097,152 (13x Fugaku's 158,976 nodes); every placement lists
  the job's nodes.
- pipeline stages named in a list: fewer than ``MAX_LAYERS`` (each stage holds a layer).
- any number of any spec field: 10^18 (an exabyte in bytes, 10^15 x a node's GB/s); the
  spec's units are human-scale, so a larger figure is a typo, whatever the field.
"""

from __future__ import annotations

MAX_LAYERS = 1024
MAX_HIDDEN = 2**20
MAX_FFN_HIDDEN = 2**22
MAX_SEQ_LEN = 2**24
MAX_VOCAB = 2**24
MAX_GLOBAL_BATCH = 2**24
MAX_TOKENS = 1e15
MAX_STEPS = 10**9
MAX_MACHINE_NODES = 2**21
MAX_MAGNITUDE = 1e18
#: a data-parallel bucket larger than a terabyte is a typo (Megatron's default: 40 MB)
MAX_BUCKET_MB = 1e6
