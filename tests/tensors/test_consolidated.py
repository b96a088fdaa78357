"""The consolidated checkpoint file: round trip with its spec, tied and untied heads, and a
one-line error for every way a file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import LM_HEAD, tensor_table
from fugaku_sim.tensors.consolidated import (
    read_consolidated,
    read_safetensors,
    write_consolidated,
)

SPEC = ModelSpec(name="t", layers=2, hidden=16, heads=2, seq_len=8, vocab=32)


def params_of(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32)
            for n, s in tensor_table(spec).checkpoint_shapes().items()}


@pytest.mark.parametrize("tied", [True, False])
def test_round_trip_keeps_tensors_spec_and_metadata(tmp_path: Path, tied: bool) -> None:
    spec = SPEC.model_copy(update={"tied_embeddings": tied})
    params = params_of(spec)
    path = tmp_path / "model.safetensors"
    write_consolidated(path, spec, {k: v.astype(np.float64) for k, v in params.items()},
                       {"format": "pt"})
    got_spec, got = read_consolidated(path)
    assert got_spec == spec and set(got) == set(params)
    assert (LM_HEAD in got) == (not tied)
    assert all(got[k].dtype == np.float32 and np.array_equal(got[k], params[k]) for k in got)
    metadata, _ = read_safetensors(path)
    assert metadata["format"] == "pt" and json.loads(metadata["model_spec"])["name"] == "t"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_writing_a_mismatch_leaves_nothing(tmp_path: Path) -> None:
    params = params_of(SPEC)
    params.pop("transformer.h.1.ln_2.bias")
    with pytest.raises(UserError, match="tensor transformer.h.1.ln_2.bias is missing"):
        write_consolidated(tmp_path / "m.safetensors", SPEC, params)
    assert not list(tmp_path.iterdir())


def _raw(path: Path, params: dict[str, np.ndarray], metadata: dict[str, str] | None) -> Path:
    from safetensors.numpy import save_file

    save_file(params, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(("change", "metadata", "message"), [
    ({}, None, "no model_spec"),
    ({}, {"model_spec": '{"name": "x", "layers": 0}'}, "invalid 'model_spec' metadata"),
    ({"transformer.h.0.mlp.c_fc.weight": np.zeros((16, 8), np.float32)}, "spec",
     "transformer.h.0.mlp.c_fc.weight has shape [16, 8], spec needs [16, 64]"),
    ({"extra": np.zeros(2, np.float32)}, "spec", "unexpected tensor extra"),
    ({"transformer.wpe.weight": np.full((8, 16), np.nan, np.float32)}, "spec", "NaN"),
    ({"transformer.wpe.weight": np.zeros((8, 16), np.int32)}, "spec", "expected floating"),
])
def test_bad_files_are_one_line_errors(tmp_path: Path, change, metadata, message) -> None:
    meta = {"model_spec": SPEC.model_dump_json()} if metadata == "spec" else metadata
    path = _raw(tmp_path / "bad.safetensors", {**params_of(SPEC), **change}, meta)
    with pytest.raises(UserError, match=message.replace("[", r"\[")) as err:
        read_consolidated(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_or_junk_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_consolidated(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(UserError, match="cannot read consolidated checkpoint"):
        read_consolidated(tmp_path / "junk.safetensors")
