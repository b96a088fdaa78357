"""Parameters by name, and what one tensor rank computes with them.

``Params`` maps the tensor table's Hugging Face names to arrays (a rank's tensor-parallel
part of each); gradients are a dict of the same keys. Block code asks for a tensor by its
role (``attn_out``, ``mlp_norm`` ...: :data:`fugaku_sim.tensors.ROLES`) through
:func:`block_names`, so one function serves every family's names, and a tensor the model
does not have (a bias of a model without biases) is simply absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import tensor_table

Params = dict[str, np.ndarray]
Names = dict[str, str]  # role -> tensor name, for the roles the model has


@dataclass(frozen=True)
class RankShare:
    """What one tensor rank computes: its query heads, its key/value heads (K/tp, or one
    copied head when K < tp) and the first id of its vocabulary shard."""

    heads: int
    kv_heads: int
    vocab_start: int = 0


def rank_share(model: ModelSpec, tp: int = 1, tp_rank: int = 0) -> RankShare:
    """The share of tensor rank ``tp_rank`` of ``tp`` (the layout is checked elsewhere:
    tp divides the heads and the vocabulary, and divides or is a multiple of kv heads)."""
    return RankShare(model.heads // tp, max(model.kv // tp, 1), tp_rank * (model.vocab // tp))


@lru_cache(maxsize=1024)
def block_names(model: ModelSpec, layer: int | None) -> Names:
    """Role -> name of the tensors of block ``layer`` (None: the embedding and the head)."""
    table = tensor_table(model)
    rows = table.block(layer) if layer is not None else [r for r in table if r.layer is None]
    return {r.role: r.name for r in rows}


def optional(p: Params, n: Names, role: str) -> np.ndarray | None:
    """The tensor of ``role``, None when the model has none."""
    return p[n[role]] if role in n else None


def add_grad(grads: Params, n: Names, role: str, g: np.ndarray | None) -> None:
    """Accumulate ``g`` into the gradient of ``role``, if the model has that tensor."""
    if role in n and g is not None:
        grads[n[role]] += g
