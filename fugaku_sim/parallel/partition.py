"""How layers split over pipeline stages and how a dimension splits over tensor ranks.

One definition of the layer split, used by the trainer (which chunks a rank runs), the
simulator's engine (which passes it times) and the tensor table (which tensors a rank holds).
"""

from __future__ import annotations

from dataclasses import dataclass


def shard_range(n: int, parts: int, index: int) -> range:
    """The slice of ``n`` items that part ``index`` of ``parts`` equal parts owns.

    >>> shard_range(12, 3, 1)
    range(4, 8)

    Raises:
        ValueError: ``parts`` does not divide ``n`` or ``index`` is out of range.
    """
    if parts < 1 or n % parts:
        raise ValueError(f"{n} items do not split into {parts} equal parts")
    if not 0 <= index < parts:
        raise ValueError(f"part {index} out of range for {parts} parts")
    size = n // parts
    return range(index * size, (index + 1) * size)


def virtual_stage(stage: int, chunk: int, stages: int) -> int:
    """Position of (stage, model chunk) along the model under interleaving (Megatron).

    >>> virtual_stage(1, 1, 4), stage_of_virtual(5, 4)
    (5, 1)
    """
    return chunk * stages + stage


def stage_of_virtual(virtual: int, stages: int) -> int:
    """The pipeline stage that holds virtual stage ``virtual`` (inverse of
    :func:`virtual_stage`)."""
    return virtual % stages


def stage_layers(layers: int, stages: int, stage: int, chunks: int = 1, chunk: int = 0) -> range:
    """Transformer layers held by ``stage`` for model ``chunk``.

    With ``chunks`` > 1 (the interleaved schedule) the model is cut into stages x chunks
    pieces and stage s holds pieces s, s + stages, s + 2 stages, ...

    >>> stage_layers(40, 8, 3)
    range(15, 20)
    >>> stage_layers(8, 2, 1, chunks=2, chunk=1)
    range(6, 8)
    """
    return shard_range(layers, stages * chunks, virtual_stage(stage, chunk, stages))


@dataclass(frozen=True)
class ModelChunk:
    """One model chunk of a pipeline stage: its layers and whether it holds the embedding
    (the first virtual stage) or the head (the last)."""

    index: int  # chunk number on its stage
    virtual: int  # position along the model: index x stages + stage
    layers: range
    first: bool
    last: bool


def stage_chunks(layers: int, stages: int, stage: int, chunks: int = 1) -> list[ModelChunk]:
    """The model chunks of ``stage``: one, or ``chunks`` under the interleaved schedule.

    >>> [(c.virtual, c.layers, c.first, c.last) for c in stage_chunks(8, 2, 1, chunks=2)]
    [(1, range(2, 4), False, False), (3, range(6, 8), False, True)]

    Raises:
        ValueError: ``stages`` x ``chunks`` does not divide ``layers``.
    """
    total = stages * chunks
    out = []
    for c in range(chunks):
        v = virtual_stage(stage, c, stages)
        out.append(ModelChunk(c, v, stage_layers(layers, stages, stage, chunks, c),
                              v == 0, v == total - 1))
    return out
