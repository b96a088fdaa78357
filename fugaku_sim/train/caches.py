"""Operations on the caches a forward keeps for its backward, whatever the layer family.

A cache is a tree of named tuples, tuples and lists whose leaves are numpy arrays and plain
values (:mod:`fugaku_sim.train.layers`' convention). Three things the trainer does to a
cache without knowing its layers:

- count the bytes it keeps alive (:func:`cache_bytes`): every array's owning buffer once,
  leaving out parameter storage (a linear layer's cache refers to its weight);
- take the weights of a ZeRO-3 unit out of it after the forward and put the regathered
  ones back before the backward (:func:`detach_views`, :func:`attach_views`). PyTorch FSDP
  does the same by freeing the storage of the gathered flat parameter after the forward
  (``_free_storage``) and refilling that storage before the backward, so the saved tensors
  that view it stay valid (``torch/distributed/fsdp/_flat_param.py``);
- rebuild the attention probabilities that selective recomputation left out
  (:func:`restore_probs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from fugaku_sim.train.layers import AttentionCache, attention_probs


def iter_arrays(tree: Any) -> Iterable[np.ndarray]:
    """Every numpy array in ``tree``."""
    if isinstance(tree, (tuple, list)):
        for x in tree:
            yield from iter_arrays(x)
    elif isinstance(tree, np.ndarray):
        yield tree


def owner(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def cache_bytes(tree: Any, exclude: Callable[[np.ndarray], bool] = lambda a: False) -> int:
    """Bytes of the buffers ``tree`` keeps alive: each owning array once, those for which
    ``exclude(owner)`` is true (parameter storage) left out."""
    seen: dict[int, int] = {}
    for a in iter_arrays(tree):
        o = owner(a)
        if id(o) not in seen and not exclude(o):
            seen[id(o)] = o.nbytes
    return sum(seen.values())


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


class ViewRef(NamedTuple):
    """Where a view lay inside a unit's buffer: byte offset, shape, strides, dtype."""

    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype


def detach_views(tree: Any, buffer: np.ndarray) -> Any:
    """``tree`` with every array that views ``buffer`` replaced by its :class:`ViewRef`."""
    lo = _address(buffer)
    hi = lo + buffer.nbytes

    def detach(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.size and lo <= _address(x) < hi:
            return ViewRef(_address(x) - lo, x.shape, x.strides, x.dtype)
        return x

    return map_tree(tree, detach)


def attach_views(tree: Any, buffer: np.ndarray) -> Any:
    """Inverse of :func:`detach_views`: the same views of a (new) ``buffer``."""

    def attach(x: Any) -> Any:
        if isinstance(x, ViewRef):
            return np.ndarray(x.shape, dtype=x.dtype, buffer=buffer, offset=x.offset,
                              strides=x.strides)
        return x

    return map_tree(tree, attach)


def map_tree(tree: Any, leaf: Callable[[Any], Any],
             node: Callable[[Any], Any] | None = None) -> Any:
    """``tree`` rebuilt with every leaf (anything but a named tuple, tuple or list; a
    :class:`ViewRef` is a leaf) replaced by ``leaf(x)``. ``node``, when given, is offered
    each named tuple first and replaces it whole when it returns something else than None.
    """
    if isinstance(tree, ViewRef):
        return leaf(tree)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        out = node(tree) if node is not None else None
        if out is not None:
            return out
        return type(tree)(*(map_tree(x, leaf, node) for x in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_tree(x, leaf, node) for x in tree)
    return leaf(tree)


def restore_probs(tree: Any) -> Any:
    """``tree`` with the probabilities of every attention cache that left them out
    recomputed from its q and k (:func:`fugaku_sim.train.layers.attention_probs`)."""

    def node(c: Any) -> Any:
        if isinstance(c, AttentionCache) and c.att is None:
            return c._replace(att=attention_probs(c.q, c.k))
        return None

    return map_tree(tree, lambda x: x, node)
