"""Load a release directory: its weights (safetensors only) checked against config.json.

::

    from fugaku_sim.release.load import load_release
    spec, params, tokenizer = load_release("results/release/NAME")

With transformers instead: ``AutoModelForCausalLM.from_pretrained(DIR)`` for the weights and
``AutoTokenizer.from_pretrained(DIR)`` for text (``tokenizer.json``, the same ids as
``tokenizer.model``; see :mod:`fugaku_sim.release.hf_tokenizer`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from fugaku_sim.errors import UserError
from fugaku_sim.evaluate.tokenizer import Tokenizer
from fugaku_sim.io import read_json_object
from fugaku_sim.release.hf_config import spec_from_config
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors.consolidated import check_params, read_safetensors


def release_spec(directory: Path) -> ModelSpec:
    """The spec ``config.json`` describes; the name is the one in ``model.safetensors``'s
    metadata when present, else the directory's name."""
    config = read_json_object(directory / "config.json", str(directory / "config.json"),
                              "rebuild the release with `fugaku-sim release build`")
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
