"""Learning rate per step: linear warm-up, then cosine decay to ``min_lr``.

nanoGPT's ``get_lr`` (karpathy/nanoGPT ``train.py``): lr (s + 1) / (warmup + 1) for
s < warmup; then min_lr + (lr - min_lr) (1 + cos(pi r)) / 2 with
r = (s - warmup) / (total - warmup); min_lr after ``total`` steps. Steps count from 0.
"""

from __future__ import annotations

import math

from fugaku_sim.spec import TrainSpec


def learning_rate(step: int, train: TrainSpec, total_steps: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    warmup = min(train.warmup_steps, total_steps)
    if step < warmup:
        return train.lr * (step + 1) / (warmup + 1)
    if step >= total_steps or total_steps == warmup:
        return train.min_lr
    ratio = (step - warmup) / (total_steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return train.min_lr + coeff * (train.lr - train.min_lr)
