"""Load a release directory: its weights (safetensors only) checked against config.json.

::

    from fugaku_sim.release.load import load_release
    spec, params, tokenizer = load_release("results/release/NAME")

With transformers instead: ``GPT2LMHeadModel.from_pretrained(DIR)`` for the weights and
``sentencepiece.SentencePieceProcessor(model_file=DIR + "/tokenizer.model")`` for text.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.errors import UserError
from fugaku_sim.evaluate.tokenizer import Tokenizer
from fugaku_sim.release.hf_config import spec_from_config
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors.consolidated import check_params, read_safetensors


def read_config(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``.

    Raises:
        UserError: missing, unreadable or not an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def release_spec(directory: Path) -> ModelSpec:
    """The spec ``config.json`` describes; the name is the one in ``model.safetensors``'s
    metadata when present, else the directory's name."""
    config = read_config(directory / "config.json")
    return spec_from_config(config, directory.name, str(directory / "config.json"))


def load_release(directory: str | Path) -> tuple[ModelSpec, dict[str, np.ndarray], Tokenizer]:
    """Spec, float32 weights and tokenizer of a release directory.

    Raises:
        UserError: no such directory, a missing file, an invalid config, or weights whose
            names or shapes do not match ``config.json``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{root}: release directory not found")
    spec = release_spec(root)
    metadata, tensors = read_safetensors(root / "model.safetensors")
    if "model_spec" in metadata:
        # the name is cosmetic; shapes come from config.json
        with contextlib.suppress(ValueError, KeyError, TypeError):
            spec = spec.model_copy(update={"name": json.loads(metadata["model_spec"])["name"]})
    check_params(spec, tensors, str(root / "model.safetensors"))
    tokenizer = Tokenizer(root / "tokenizer.model")
    return spec, {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}, tokenizer
