"""Read a consolidated GPT-2 checkpoint (safetensors, Hugging Face names) and check it.

File format (the trainer's consolidated checkpoint, ``results/train/model.safetensors``):
tensors named as Hugging Face's ``GPT2LMHeadModel`` names them, Conv1D layouts ``[in, out]``,

==========================================  ============
``transformer.wte.weight``                  [V, C]
``transformer.wpe.weight``                  [T, C]
``transformer.h.{i}.ln_1.weight`` / bias    [C]
``transformer.h.{i}.attn.c_attn.weight``    [C, 3C]  (bias [3C])
``transformer.h.{i}.attn.c_proj.weight``    [C, C]   (bias [C])
``transformer.h.{i}.ln_2.weight`` / bias    [C]
``transformer.h.{i}.mlp.c_fc.weight``       [C, F]   (bias [F])
``transformer.h.{i}.mlp.c_proj.weight``     [F, C]   (bias [C])
``transformer.ln_f.weight`` / bias          [C]
``lm_head.weight``                          [V, C], only when embeddings are not tied
==========================================  ============

and the :class:`ModelSpec` as JSON under the metadata key ``model_spec``. Loading never
executes anything (safetensors, no pickle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec

SPEC_METADATA_KEY = "model_spec"


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor name of ``spec``'s GPT-2 with its shape, in Hugging Face order: the
    trainer's ``global_shapes``, plus ``lm_head.weight`` when embeddings are not tied."""
    from fugaku_sim.train.sharding import LM_HEAD, global_shapes

    shapes = dict(global_shapes(spec))
    if not spec.tied_embeddings:
        shapes[LM_HEAD] = (spec.vocab, spec.hidden)
    return shapes


def check_params(spec: ModelSpec, params: dict[str, np.ndarray], source: str) -> None:
    """Check that ``params`` holds exactly ``spec``'s tensors with the right shapes.

    Raises:
        UserError: a missing, unexpected or wrongly shaped tensor (the first is named, with
            the count of the others), or a non-floating or non-finite tensor.
    """
    want = expected_shapes(spec)
    missing = [k for k in want if k not in params]
    extra = [k for k in params if k not in want]
    wrong = [k for k in want if k in params and tuple(params[k].shape) != want[k]]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            first = f"{k} has shape {list(params[k].shape)}, spec needs {list(want[k])}"
        elif missing:
            first = f"tensor {missing[0]} is missing"
        else:
            first = f"unexpected tensor {extra[0]}"
        more = len(missing) + len(extra) + len(wrong) - 1
        raise UserError(f"{source}: does not match model {spec.name!r} "
                        f"(layers {spec.layers}, hidden {spec.hidden}, vocab {spec.vocab}, "
                        f"seq_len {spec.seq_len}): {first}"
                        + (f" (and {more} more mismatches)" if more else ""))
    for k, arr in params.items():
        if not np.issubdtype(arr.dtype, np.floating):
            raise UserError(f"{source}: tensor {k} has dtype {arr.dtype}, expected floating point")
        if not np.isfinite(arr).all():
            raise UserError(f"{source}: tensor {k} holds NaN or infinite values")


def read_safetensors(path: str | Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Metadata and tensors of a safetensors file (numpy; nothing executed).

    Raises:
        UserError: the file is missing or not a valid safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    return metadata, tensors


def load_checkpoint(path: str | Path) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """Load a consolidated checkpoint: its spec and float32 weights, checked against each other.

    Reading is the trainer's :func:`fugaku_sim.train.checkpoint.load_consolidated` (one
    loader for the format); on top of it, unexpected, non-floating or non-finite tensors are
    refused and an invalid ``model_spec`` is a user error.

    Raises:
        UserError: missing or unreadable file, no or bad spec, tensors that do not match it.
    """
    from pydantic import ValidationError

    from fugaku_sim.train.checkpoint import load_consolidated

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        spec, tensors = load_consolidated(path)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid {SPEC_METADATA_KEY!r} metadata ({first})") from None
    check_params(spec, tensors, str(path))
    return spec, {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}


def save_checkpoint(path: str | Path, spec: ModelSpec, params: dict[str, np.ndarray],
                    extra_metadata: dict[str, str] | None = None) -> None:
    """Write ``params`` (checked against ``spec``) as a consolidated checkpoint, atomically.

    Used by the release and by tests; the trainer writes the same format.

    Raises:
        UserError: ``params`` do not match ``spec``.
    """
    from safetensors.numpy import save_file

    from fugaku_sim.io import atomic_path

    check_params(spec, params, str(path))
    metadata = {SPEC_METADATA_KEY: spec.model_dump_json(), **(extra_metadata or {})}
    arrays = {k: np.ascontiguousarray(params[k], dtype=np.float32)
              for k in expected_shapes(spec)}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)
