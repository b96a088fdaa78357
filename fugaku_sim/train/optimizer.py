"""AdamW, Adam and SGD on flat FP32 ranges of parameters (a rank's ZeRO shard, or all).

AdamW follows ``torch.optim.AdamW`` (Loshchilov & Hutter 2019, decoupled weight decay):
p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = 1, 2, ...
``adam`` adds wd p to the gradient instead (``torch.optim.Adam``); ``sgd`` is plain SGD with
the same L2 term. Weight decay applies to the ``decay`` ranges only: matrices and
embeddings, not biases or layer norms (nanoGPT ``configure_optimizers``).

The update runs over chunks of :data:`CHUNK` elements, so its temporaries stay a few
hundred KiB whatever the size of the range (PyTorch's fused and ``foreach`` optimizers
likewise work tensor by tensor, never on one temporary the size of the model).
"""

from __future__ import annotations

import math

import numpy as np

from fugaku_sim.spec import TrainSpec

CHUNK = 1 << 16  # elements updated at a time (256 KiB of FP32 per temporary)

Ranges = list[tuple[int, int]]


class Optimizer:
    """Optimizer states for ``size`` parameters and the update rule of ``train.optimizer``."""

    def __init__(self, train: TrainSpec, size: int) -> None:
        self.kind = train.optimizer
        self.beta1, self.beta2 = train.beta1, train.beta2
        self.eps, self.weight_decay = train.eps, train.weight_decay
        adam = self.kind in ("adam", "adamw")
        self.exp_avg = np.zeros(size if adam else 0, dtype=np.float32)
        self.exp_avg_sq = np.zeros(size if adam else 0, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return self.exp_avg.nbytes + self.exp_avg_sq.nbytes

    def step(self, param: np.ndarray, grad: np.ndarray, decay: Ranges, lr: float, t: int,
             offset: int = 0) -> None:
        """Update ``param`` in place from ``grad`` (both [n]); ``t`` counts from 1.

        ``decay``: [lo, hi) ranges of ``param`` with weight decay; ``offset``: where
        ``param`` begins in the optimizer states. ``grad`` may be overwritten.
        """
        wd = np.float32(self.weight_decay)
        for lo, hi in decay if self.weight_decay else []:
            if self.kind == "adamw":
                param[lo:hi] *= 1 - np.float32(lr * self.weight_decay)
            else:
                grad[lo:hi] += wd * param[lo:hi]  # L2 in the gradient
        for lo in range(0, param.size, CHUNK):
            hi = min(lo + CHUNK, param.size)
            if self.kind == "sgd":
                param[lo:hi] -= np.float32(lr) * grad[lo:hi]
            else:
                self._adam(param[lo:hi], grad[lo:hi], offset + lo, offset + hi, lr, t)

    def _adam(self, param: np.ndarray, grad: np.ndarray, lo: int, hi: int, lr: float,
              t: int) -> None:
        m, v = self.exp_avg[lo:hi], self.exp_avg_sq[lo:hi]
        m *= np.float32(self.beta1)
        m += np.float32(1 - self.beta1) * grad
        v *= np.float32(self.beta2)
        grad *= grad
        grad *= np.float32(1 - self.beta2)
        v += grad
        denom = np.sqrt(v)
        denom *= np.float32(1 / math.sqrt(1 - self.beta2**t))
        denom += np.float32(self.eps)
        np.divide(m, denom, out=denom)
        denom *= np.float32(lr / (1 - self.beta1**t))
        param -= denom
