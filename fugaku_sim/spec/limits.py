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

Physical limits of a cluster profile's figures (:class:`Limit`, checked by :func:`at_most`):
each is the fastest or largest real hardware we know of times a margin of about 10, so a new
machine fits and a unit slip (MB/s for GB/s, ns for us) or an extra zero does not. A "node"
may be as large as a whole NVLink domain: a GB200 NVL72 rack (72 Blackwell GPUs and 36 Grace
CPUs) modelled as one node is the largest node below. Sources:

- [NVL72] NVIDIA GB200 NVL72 datasheet (2024): 180 PFLOP/s dense FP16/BF16 (360 sparse);
  up to 13.4 TB HBM3e at 576 TB/s plus 17 TB LPDDR5X; NVLink 5 at
  1.8 TB/s per GPU (900 GB/s per direction); about 120 kW per rack.
- [CX8] NVIDIA ConnectX-8 SuperNIC (2024): 800 Gb/s = 100 GB/s per port, one per GPU.
- [SDF] HPE Superdome Flex QuickSpecs: up to 48 TB of memory in one 32-socket system (the
  largest shared-memory node sold).
- [WSE3] Cerebras CS-3 / WSE-3 (2024): 900,000 cores on one wafer, one system.
- [Clock] Intel Core i9-14900KS (2024): 6.2 GHz, the highest stock clock shipped.
- [Aurora] Argonne, Aurora's DAOS storage (2024): 230 PB at more than 25 TB/s (IO500).
- [GbE] MPI over TCP on Gigabit Ethernet: ~50 us small-message latency (the slowest
  cluster network in use; this repository's local profile assumes the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AfterValidator

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


@dataclass(frozen=True)
class Limit:
    """The largest sane value of a field of a cluster profile, its unit, and the real
    hardware the limit is derived from (see the module docstring for sources)."""

    high: float
    unit: str
    basis: str

    def check(self, value: float) -> float:
        """``value`` itself, or ValueError naming the limit and where it comes from."""
        if value > self.high:
            raise ValueError(f"above the limit of {self.high:g} {self.unit} ({self.basis}; a "
                             "unit slip or an extra zero?)")
        return value


def at_most(limit: Limit) -> AfterValidator:
    """Field metadata refusing a value above ``limit``: ``Annotated[float, at_most(L)]``."""
    return AfterValidator(limit.check)


#: peak arithmetic rate of one node, any precision: 5.5x [NVL72]'s dense BF16 rack
NODE_PEAK_TFLOPS = Limit(1e6, "TFLOP/s per node",
                         "5.5x a GB200 NVL72 rack's 180 PFLOP/s dense BF16")
#: memory bandwidth of one node: 17x [NVL72]'s HBM3e
NODE_MEM_BW_GBPS = Limit(1e7, "GB/s per node", "17x a GB200 NVL72 rack's 576 TB/s")
#: memory of one node: 2^20 GiB (1 PiB), 36x [NVL72]'s 30 TB and 23x [SDF]
NODE_MEM_GIB = Limit(2.0**20, "GiB per node", "36x a GB200 NVL72 rack's 30 TB")
#: one link, port or process-to-process path, per direction: 11x NVLink 5 [NVL72]
LINK_BW_GBPS = Limit(1e4, "GB/s per link and direction", "11x NVLink 5's 900 GB/s")
#: all a node injects into the network at once: 14x [NVL72] with one [CX8] port per GPU
NODE_INJECTION_BW_GBPS = Limit(1e5, "GB/s per node",
                               "14x a GB200 NVL72 rack's 72 x 100 GB/s ports")
#: aggregate file-system rate of a job: 40x [Aurora]
FILESYSTEM_BW_GBPS = Limit(1e6, "GB/s", "40x Aurora's 25 TB/s DAOS storage")
#: any latency or fixed cost per operation: 200x [GbE]
LATENCY_US = Limit(1e4, "us", "200x MPI over Gigabit Ethernet's 50 us")
#: cores (and processes, devices) of one node: 4.7x [WSE3]
NODE_CORES = Limit(2.0**22, "per node", "4.7x a Cerebras WSE-3's 900,000 cores")
#: core clock: 3.2x [Clock]
CLOCK_GHZ = Limit(20.0, "GHz", "3.2x the 6.2 GHz of the fastest-clocked CPU shipped")
#: power of one node under load: 8x [NVL72]'s rack
NODE_POWER_W = Limit(1e6, "W per node", "8x a GB200 NVL72 rack's 120 kW")
#: a measured non-GEMM rate, elements (or parameters) per second: an element moves at least
#: a byte, so no faster than the memory bandwidth limit in bytes
NODE_ELEMENT_RATE_GELEM = Limit(NODE_MEM_BW_GBPS.high, "1e9 elements/s per node",
                                "an element moves at least a byte: the memory bandwidth limit")
