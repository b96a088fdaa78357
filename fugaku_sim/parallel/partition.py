"""How layers split over pipeline stages and how a dimension splits over tensor ranks."""

from __future__ import annotations


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
