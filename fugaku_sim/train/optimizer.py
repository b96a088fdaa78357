"""AdamW, Adam and SGD on a flat FP32 range of parameters (a rank's ZeRO-1 shard or all).

AdamW follows ``torch.optim.AdamW`` (Loshchilov & Hutter 2019, decoupled weight decay):
p <- p (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = 1, 2, ...
``adam`` adds wd p to the gradient instead (``torch.optim.Adam``); ``sgd`` is plain SGD with
the same L2 term. Weight decay applies where ``decay_mask`` is 1: matrices and embeddings, not
biases or layer norms (nanoGPT ``configure_optimizers``).
"""

from __future__ import annotations

import math

import numpy as np

from fugaku_sim.spec import TrainSpec


class Optimizer:
    """Optimizer states for ``size`` parameters and the update rule of ``train.optimizer``."""

    def __init__(self, train: TrainSpec, size: int) -> None:
        self.kind = train.optimizer
        self.beta1, self.beta2 = train.beta1, train.beta2
        self.eps, self.weight_decay = train.eps, train.weight_decay
        adam = self.kind in ("adam", "adamw")
        self.exp_avg = np.zeros(size if adam else 0, dtype=np.float32)
        self.exp_avg_sq = np.zeros(size if adam else 0, dtype=np.float32)

    def step(self, param: np.ndarray, grad: np.ndarray, decay_mask: np.ndarray,
             lr: float, t: int) -> None:
        """Update ``param`` in place from ``grad`` (both [size]); ``t`` counts from 1.

        ``grad`` may be overwritten.
        """
        if self.kind != "adamw" and self.weight_decay:
            grad += np.float32(self.weight_decay) * decay_mask * param  # L2 in the gradient
        if self.kind == "sgd":
            param -= np.float32(lr) * grad
            return
        if self.kind == "adamw" and self.weight_decay:
            param *= 1 - np.float32(lr * self.weight_decay) * decay_mask
        m, v = self.exp_avg, self.exp_avg_sq
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
