"""Training and validation samples from the data stage's indexed shards and blend file.

Like Megatron-LM's ``GPTDataset`` and ``BlendedDataset`` (``megatron/core/datasets``):

- Each shard is a stream of its documents, concatenated in a shuffled order that changes
  every epoch; sample i of an epoch is the ``seq_len + 1`` tokens starting at i x seq_len
  (consecutive samples share one token, the last target of one is the first input of the
  next), and the samples of an epoch are visited in a shuffled order. An epoch has
  (tokens - 1) // seq_len samples.
- The blend picks, for global sample j, the shard whose share so far lags its weight most
  (``build_blending_indices`` in Megatron's ``helpers.cpp``), so every prefix of the stream
  follows the weights as closely as whole samples allow.
- Every permutation comes from a generator seeded by (seed, split, shard, epoch), so a sample
  is a pure function of its index: the loader needs no state to resume at any step.

A global batch of step s is samples [s B, (s + 1) B); data-parallel rank r takes the r-th of
dp equal consecutive slices, and its micro-batches are consecutive pieces of that slice.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from fugaku_sim.data.blend import Shard
from fugaku_sim.errors import UserError


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


class ShardSamples:
    """Samples of ``seq_len + 1`` tokens from one indexed shard (Megatron ``GPTDataset``).

    ``dataset`` is anything with ``sizes`` (tokens per document) and ``__getitem__``
    returning a document's tokens (:class:`fugaku_sim.data.indexed.IndexedDataset`).

    Raises:
        UserError: the shard holds fewer than seq_len + 1 tokens.
    """

    def __init__(self, dataset: Any, seq_len: int, seed: int, key: int, name: str) -> None:
        self.dataset, self.seq_len, self.seed, self.key = dataset, seq_len, seed, key
        self.sizes = np.asarray(dataset.sizes, dtype=np.int64)
        tokens = int(self.sizes.sum())
        self.per_epoch = (tokens - 1) // seq_len
        if self.per_epoch < 1:
            raise UserError(f"--data: shard {name} holds {tokens} tokens, fewer than one "
                            f"sample of {seq_len + 1}")
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(document order, end offset of each document in it, sample order) of an epoch."""
        if epoch not in self._epochs:
            docs = _rng(self.seed, self.key, epoch, 0).permutation(len(self.sizes))
            ends = np.cumsum(self.sizes[docs])
            samples = _rng(self.seed, self.key, epoch, 1).permutation(self.per_epoch)
            if len(self._epochs) > 2:
                self._epochs.pop(min(self._epochs))
            self._epochs[epoch] = (docs, ends, samples)
        return self._epochs[epoch]

    def __getitem__(self, index: int) -> np.ndarray:
        """Sample ``index`` (any non-negative integer; epochs repeat): int64 [seq_len + 1]."""
        epoch, within = divmod(index, self.per_epoch)
        docs, ends, samples = self._epoch(epoch)
        start = int(samples[within]) * self.seq_len
        stop = start + self.seq_len + 1
        out = np.empty(self.seq_len + 1, dtype=np.int64)
        d = int(np.searchsorted(ends, start, side="right"))
        pos = 0
        while pos < out.size:
            doc_start = int(ends[d - 1]) if d else 0
            tokens = self.dataset[int(docs[d])]
            lo = start + pos - doc_start
            take = min(len(tokens) - lo, stop - start - pos)
            out[pos:pos + take] = tokens[lo:lo + take]
            pos += take
            d += 1
        return out


def blending_indices(weights: list[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, sample index within the shard) of global samples 0 .. size-1.

    Megatron ``build_blending_indices``: sample j goes to the shard with the largest
    weight x max(j, 1) - samples taken so far (first such shard on ties).
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    counts = np.zeros(len(w), dtype=np.int64)
    which = np.empty(size, dtype=np.int64)
    within = np.empty(size, dtype=np.int64)
    for j in range(size):
        error = w * max(j, 1) - counts
        k = int(np.argmax(error))
        which[j], within[j] = k, counts[k]
        counts[k] += 1
    return which, within


class BlendedSamples:
    """The samples of one split, blended over its shards by weight."""

    def __init__(self, shards: list[ShardSamples], weights: list[float], size: int) -> None:
        self.shards = shards
        self.which, self.within = blending_indices(weights, size)

    def __len__(self) -> int:
        return int(self.which.size)

    def __getitem__(self, j: int) -> np.ndarray:
        return self.shards[int(self.which[j])][int(self.within[j])]

    def batch(self, start: int, count: int) -> np.ndarray:
        """Samples start .. start + count - 1 as int64 [count, seq_len + 1].

        Raises:
            IndexError: past the samples the split was built for.
        """
        if start + count > len(self):
            raise IndexError(f"samples up to {start + count} asked, {len(self)} built")
        return np.stack([self[j] for j in range(start, start + count)])


def open_split(shards: Sequence[Shard], split: str, seq_len: int, seed: int, size: int,
               vocab: int, check_ids: bool = False) -> BlendedSamples | None:
    """The blended samples of ``split`` (``size`` of them) from its ``shards``
    (:meth:`fugaku_sim.data.blend.Blend.shards`); None if the split has none.

    With ``check_ids`` every token id is checked to be in [0, vocab) (one pass over the
    shards, about a second a gigabyte), so a shard written with another tokenizer is refused
    before training rather than as an out-of-range embedding lookup mid-run.

    Raises:
        UserError: a shard is missing or corrupt, holds non-integer values, or (with
            ``check_ids``) a token id outside the vocabulary.
    """
    from fugaku_sim.data.indexed import IndexedDataset, check_token_ids

    if not shards or size <= 0:
        return None
    samples = []
    for i, shard in enumerate(shards):
        ds = IndexedDataset(shard.prefix)  # raises UserError naming a missing file
        check_token_ids(ds, vocab if check_ids else None)
        key = zlib.crc32(f"{split}/{i}/{shard.domain}".encode())
        samples.append(ShardSamples(ds, seq_len, seed, key, str(shard.prefix)))
    return BlendedSamples(samples, [s.weight for s in shards], size)


def rank_micro_batches(samples: np.ndarray, dp: int, dp_rank: int,
                       micro_batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Data-parallel rank ``dp_rank``'s micro-batches (tokens, targets) of a global batch.

    samples int64 [B, T + 1] -> list of ([b, T], [b, T]) with b = micro_batch.
    """
    share = samples.shape[0] // dp
    mine = samples[dp_rank * share:(dp_rank + 1) * share]
    return [(mine[i:i + micro_batch, :-1], mine[i:i + micro_batch, 1:])
            for i in range(0, share, micro_batch)]
