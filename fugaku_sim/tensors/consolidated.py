"""The consolidated checkpoint: the whole model in one safetensors file, with its spec.

The one reader and writer of the format, used by the trainer (consolidation after training),
evaluation (loading) and the release (export). Format:

- tensors: every tensor of :meth:`TensorTable.checkpoint_shapes` (Hugging Face
  ``GPT2LMHeadModel`` names and Conv1D layouts, or ``LlamaForCausalLM``'s names and
  ``nn.Linear`` layouts; ``lm_head.weight`` only when the embeddings are not tied), FP32, in
  table order;
- metadata: the :class:`ModelSpec` as JSON under ``model_spec``, plus what the writer adds
  (the trainer ``format: huggingface-gpt2`` or ``huggingface-llama`` and ``step``; a
  release ``format: pt``, which ``transformers`` requires).

Reading never executes anything (safetensors, no pickle). Writing goes through a temporary
name and a rename, so a crash leaves the old file or the new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors.table import tensor_table

SPEC_METADATA_KEY = "model_spec"


def read_safetensors(path: str | Path, kind: str = "consolidated checkpoint"
                     ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Metadata and tensors of a safetensors file (numpy; nothing executed); ``kind`` names
    what the file is in messages (``checkpoint rank file``).

    Raises:
        UserError: the file is missing, not a regular file (a folder, pipe or device), or not
            a valid safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    from fugaku_sim.io import check_regular_file

    path = Path(path)
    check_regular_file(path, str(path), kind=f"{kind} (a .safetensors file)")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError, TypeError, MemoryError, OverflowError) as exc:
        # TypeError: a dtype numpy lacks (F8_E4M3); MemoryError: a header claiming terabytes
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{path}: cannot read {kind} ({first})") from None
    return metadata, tensors


def check_params(spec: ModelSpec, params: dict[str, np.ndarray], source: str) -> None:
    """Check that ``params`` holds exactly ``spec``'s checkpoint tensors with their shapes.

    Raises:
        UserError: a missing, unexpected or wrongly shaped tensor (the first is named, with
            the count of the others), or a non-floating or non-finite tensor.
    """
    want = tensor_table(spec).checkpoint_shapes()
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


def spec_from_metadata(metadata: dict[str, str], source: str) -> ModelSpec:
    """The :class:`ModelSpec` stored in a consolidated file's metadata.

    Raises:
        UserError: no ``model_spec`` key, or one that is not a valid spec.
    """
    from pydantic import ValidationError

    if SPEC_METADATA_KEY not in metadata:
        raise UserError(f"{source}: no {SPEC_METADATA_KEY} in the safetensors metadata")
    try:
        return ModelSpec.model_validate_json(metadata[SPEC_METADATA_KEY])
    except ValidationError as exc:  # named by the field (not JSON: the top level)
        from fugaku_sim.spec.load import validation_message

        raise UserError(f"{source}: invalid {SPEC_METADATA_KEY!r} metadata "
                        f"({validation_message(exc, '', 'model')})") from None


def read_consolidated(path: str | Path) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The spec and FP32 tensors of a consolidated checkpoint, checked against each other.

    Raises:
        UserError: missing or unreadable file, no or bad spec, tensors that do not match it.
    """
    metadata, tensors = read_safetensors(path)
    spec = spec_from_metadata(metadata, str(path))
    check_params(spec, tensors, str(path))
    return spec, {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}


def write_consolidated(path: str | Path, spec: ModelSpec, params: dict[str, np.ndarray],
                       metadata: dict[str, str] | None = None) -> None:
    """Write ``params`` (checked against ``spec``; FP32, table order) with the spec and
    ``metadata`` as a consolidated checkpoint, atomically.

    Raises:
        UserError: ``params`` do not match ``spec``.
    """
    from safetensors.numpy import save_file

    from fugaku_sim.io import atomic_path

    check_params(spec, params, str(path))
    meta = {SPEC_METADATA_KEY: spec.model_dump_json(), **(metadata or {})}
    arrays = {k: np.ascontiguousarray(params[k], dtype=np.float32)
              for k in tensor_table(spec).checkpoint_shapes()}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=meta)
