"""A rank's share of the model: the tensors one rank of a pipeline stage holds, and their sizes.

A stage holds the model chunks :func:`fugaku_sim.parallel.stage_chunks` gives it; a chunk
holds the blocks of its layers, plus the embedding when it is the first virtual stage and
the head when it is the last. A rank holds its tensor-parallel part of each
(:meth:`TensorInfo.local_shape`). The head's tied copy of the token embedding is held only
by a stage that does not hold the embedding itself (pp > 1, as in Megatron-LM).

The sums here are what the simulator charges for memory, gradient messages and the
optimizer, and what the trainer allocates: one rank of stage ``s`` holds
``stage_parameters(model, layout, s)`` parameters.

Worked example (gpt-tiny: 4 layers, C 128, F 512, V 8192, T 128; tp 2, pp 2). A block holds
C x 3C / 2 + 3C / 2 (QKV) + C x C / 2 + C (projection) + C x F / 2 + F / 2 (fc) + F x C / 2 + C
(fc2) + 4 C (two norms) = 99,520 per rank: the 6 C = 768 parameters of the norms and the
row-parallel biases are whole on every rank. Stage 0 adds wte V C / 2 = 524,288 and wpe
T C = 16,384; stage 1 the final norm 2 C = 256 and the tied copy V C / 2 = 524,288. So one rank
of stage 0 holds 2 x 99,520 + 540,672 = 739,712 and one of stage 1 holds 723,584.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from fugaku_sim.parallel import ModelChunk, stage_chunks
from fugaku_sim.spec import Layout, ModelSpec
from fugaku_sim.tensors.table import Part, TensorInfo, TensorTable, tensor_table


def layout_chunks(model: ModelSpec, layout: Layout, stage: int) -> list[ModelChunk]:
    """The model chunks of ``stage`` under ``layout`` (one unless interleaved)."""
    return stage_chunks(model.layers, layout.pp, stage, layout.virtual_stages)


def chunk_tensors(table: TensorTable, chunk: ModelChunk) -> list[TensorInfo]:
    """The rows ``chunk`` needs, in forward order: embedding, blocks, head (with the tied
    copy, which :func:`held_tensors` drops where the stage holds what it copies)."""
    rows = table.part("embedding") if chunk.first else []
    for layer in chunk.layers:
        rows += table.block(layer)
    return rows + (table.part("head") if chunk.last else [])


def held_tensors(table: TensorTable, chunks: list[ModelChunk]) -> list[TensorInfo]:
    """The rows a stage holding ``chunks`` keeps, in forward order (its flat-buffer order):
    the embedding, every chunk's blocks, the head."""
    rows = [r for c in chunks for r in chunk_tensors(table, c)]
    rows.sort(key=lambda r: ("embedding", "block", "head").index(r.part))  # stable
    names = {r.name for r in rows}
    return [r for r in rows if r.tied_to is None or r.tied_to not in names]


@lru_cache(maxsize=4096)
def _stage_sums(model: ModelSpec, tp: int, pp: int, chunks: int, stage: int
                ) -> tuple[tuple[int, ...], dict[Part, int]]:
    """(parameters per chunk, tensors by part) of one rank of ``stage``."""
    table = tensor_table(model)
    parts = stage_chunks(model.layers, pp, stage, chunks)
    held = held_tensors(table, parts)
    names = {r.name for r in held}
    sizes = tuple(sum(r.local_size(tp) for r in chunk_tensors(table, c) if r.name in names)
                  for c in parts)
    return sizes, dict(Counter(r.part for r in held))


def chunk_parameters(model: ModelSpec, layout: Layout, stage: int) -> list[int]:
    """Parameters one rank of ``stage`` holds for each of its model chunks."""
    return list(_stage_sums(model, layout.tp, layout.pp, layout.virtual_stages, stage)[0])


def stage_parameters(model: ModelSpec, layout: Layout, stage: int) -> int:
    """Parameters held by one rank of pipeline ``stage`` (the tied copy included)."""
    return sum(chunk_parameters(model, layout, stage))


def stage_tensor_count(model: ModelSpec, layout: Layout, stage: int,
                       part: Part | None = None) -> int:
    """Tensors one rank of ``stage`` holds (of one ``part`` of the model, if given)."""
    counts = _stage_sums(model, layout.tp, layout.pp, layout.virtual_stages, stage)[1]
    return sum(counts.values()) if part is None else counts.get(part, 0)


def parameters_by_stage(model: ModelSpec, layout: Layout) -> list[int]:
    """Parameters held by one rank of each pipeline stage, stage 0 first."""
    return [stage_parameters(model, layout, s) for s in range(layout.pp)]


def tied_copies(model: ModelSpec, layout: Layout) -> list[TensorInfo]:
    """The tied copies one rank of the last stage holds (none with untied embeddings or
    when the embedding and head share a stage)."""
    last = held_tensors(tensor_table(model), layout_chunks(model, layout, layout.pp - 1))
    return [r for r in last if r.tied_to is not None]


def tied_names(model: ModelSpec, layout: Layout) -> frozenset[str]:
    """Tensors kept equal between the first and last stage, whose gradients are summed
    between them: every tied copy and what it copies."""
    return frozenset(n for r in tied_copies(model, layout) for n in (r.name, r.tied_to) if n)


def tied_copy_parameters(model: ModelSpec, layout: Layout) -> int:
    """Parameters of the tied copies one rank of the last stage holds (0 when none)."""
    return sum(r.local_size(layout.tp) for r in tied_copies(model, layout))


def model_parallel_parameters(model: ModelSpec, layout: Layout) -> int:
    """Parameters held by all tp x pp ranks of one model replica together: the model, plus
    the copies of replicated tensors on every tensor rank, the tied copy and padding."""
    return layout.tp * sum(parameters_by_stage(model, layout))
