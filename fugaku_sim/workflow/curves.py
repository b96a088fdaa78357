"""Loss curves of a training run, from its ``metrics.jsonl``, as a PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.io import atomic_path
from fugaku_sim.train import metrics


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The per-step records of ``metrics.jsonl`` (:func:`fugaku_sim.train.metrics.read_metrics`),
    at least one.

    Raises:
        UserError: the file is missing, holds a line that is not a step record, or no step.
    """
    records = metrics.read_metrics(path)
    if not records:
        raise UserError(f"{path}: no training steps recorded")
    return records


def plot_loss(records: list[dict[str, Any]], vocab: int | None, out: Path, title: str) -> None:
    """Training loss per step, validation loss where measured, and ln(vocab) for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(steps, [r["loss"] for r in records], label="train loss", lw=1.2)
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", ms=4)
    if vocab:
        ax.axhline(math.log(vocab), ls="--", c="grey", lw=1,
                   label=f"ln(vocabulary) = {math.log(vocab):.2f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
