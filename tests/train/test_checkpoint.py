"""Checkpoint files without MPI: shards reassemble, checksums catch corruption, the
consolidated file is Hugging Face GPT-2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import tensor_table
from fugaku_sim.tensors.consolidated import read_consolidated
from fugaku_sim.train import checkpoint as ckpt
from fugaku_sim.train.buffers import FlatParams
from fugaku_sim.train.model import forward_logits, init_params

SPEC = ModelSpec(name="t", layers=2, hidden=16, heads=2, seq_len=8, vocab=32)


def write_tp2_checkpoint(out: Path, step: int, spec: ModelSpec = SPEC) -> dict[str, np.ndarray]:
    """A checkpoint as two tensor-parallel ranks (pp = dp = 1) would write it."""
    params = init_params(spec, 1)
    directory = ckpt.step_dir(out, step)
    directory.mkdir(parents=True)
    files = {}
    for t in range(2):
        local = {n: tensor_table(spec).shard(n, v, 2, t) for n, v in params.items()}
        flat, pos = [], 0
        for n, v in local.items():
            flat.append((n, pos, pos + v.size, v.shape))
            pos += v.size
        m = np.concatenate([v.ravel() for v in local.values()]) * 0.5
        state = ckpt.RankState(t, 0, 0, flat, pos, local, [(0, pos)], m, m * m)
        info = ckpt.write_rank_file(directory, state)
        assert info is not None
        files[info[0]] = info[1]
    ckpt.write_index(directory, {"step": step, "model": spec.model_dump(mode="json")}, files)
    return params


def test_shards_reassemble(tmp_path: Path) -> None:
    params = write_tp2_checkpoint(tmp_path, 3)
    state = ckpt.read_global_state(ckpt.step_dir(tmp_path, 3), SPEC)
    assert state.step == 3 and set(state.params) == set(params)
    for n, v in params.items():
        np.testing.assert_array_equal(state.params[n], v)
        np.testing.assert_array_equal(state.exp_avg[n], v * 0.5)
    part = ckpt.local_part(tensor_table(SPEC), "lm_head.weight", state.params, 2, 1)
    np.testing.assert_array_equal(part, params["transformer.wte.weight"][16:])


def test_zero3_shards_reassemble(tmp_path: Path) -> None:
    """Two data-parallel ranks of one stage under ZeRO-3: each saves its 1/2 of every
    segment of the flat buffer (weights and optimizer states, in shard order); reading
    puts every tensor back together, whichever rank held which part."""
    from fugaku_sim.train.sharding import unit_groups

    params = init_params(SPEC, 2)
    table = tensor_table(SPEC)
    names = [n for n in params if table[n].tied_to is None]
    flat = FlatParams([(n, params[n].shape) for n in names], pad_to=2,
                      groups=unit_groups(names, table))
    for n in names:
        flat.params[n][...] = params[n]
    meta = [(n, *flat.offsets[n], flat.shapes[n]) for n in flat.names]
    directory = ckpt.step_dir(tmp_path, 7)
    directory.mkdir(parents=True)
    files = {}
    for d in range(2):
        pieces = flat.owned(d, 2)
        shard = flat.shard_of(flat.data, pieces)
        state = ckpt.RankState(0, 0, d, meta, flat.padded, {},  # second moments: squares
                               [(p.start, p.end) for p in pieces], shard * 2, shard ** 2, shard)
        info = ckpt.write_rank_file(directory, state)
        assert info is not None
        files[info[0]] = info[1]
    ckpt.write_index(directory, {"step": 7, "model": SPEC.model_dump(mode="json")}, files)
    state = ckpt.read_global_state(directory, SPEC)
    assert set(state.params) == set(names) == set(state.exp_avg_sq)
    for n in names:
        np.testing.assert_array_equal(state.params[n], params[n])
        np.testing.assert_array_equal(state.exp_avg_sq[n], params[n] ** 2)


def test_corruption_falls_back_to_the_previous(tmp_path: Path) -> None:
    write_tp2_checkpoint(tmp_path, 2)
    write_tp2_checkpoint(tmp_path, 4)
    assert ckpt.select_checkpoint(tmp_path, SPEC).directory == ckpt.step_dir(tmp_path, 4)
    victim = ckpt.step_dir(tmp_path, 4) / ckpt.rank_file(1, 0, 0)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    assert "sha256" in (ckpt.verify(ckpt.step_dir(tmp_path, 4)) or "")
    sel = ckpt.select_checkpoint(tmp_path, SPEC)
    assert sel.directory == ckpt.step_dir(tmp_path, 2)
    assert sel.skipped and "step_0000004" in sel.skipped[0]
    (ckpt.step_dir(tmp_path, 2) / ckpt.rank_file(0, 0, 0)).unlink()
    with pytest.raises(UserError, match="no intact checkpoint"):
        ckpt.select_checkpoint(tmp_path, SPEC)


def test_checkpoint_of_another_model(tmp_path: Path) -> None:
    write_tp2_checkpoint(tmp_path, 1)
    other = SPEC.model_copy(update={"name": "u", "layers": 4})
    with pytest.raises(UserError, match="checkpoint is of model 't'.*layers"):
        ckpt.select_checkpoint(tmp_path, other)
    assert ckpt.select_checkpoint(tmp_path / "none", SPEC).directory is None


def test_consolidated_file_round_trip(tmp_path: Path) -> None:
    params = write_tp2_checkpoint(tmp_path, 1)
    path = tmp_path / "model.safetensors"
    ckpt.consolidate(ckpt.step_dir(tmp_path, 1), path, SPEC)
    spec, tensors = read_consolidated(path)
    assert spec == SPEC
    assert list(tensors) == list(params) or set(tensors) == set(params)
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (16, 48)
    assert tensors["transformer.h.1.mlp.c_proj.weight"].shape == (64, 16)
    assert "lm_head.weight" not in tensors
    for n, v in params.items():
        np.testing.assert_array_equal(tensors[n], v)
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        assert json.loads(f.metadata()["model_spec"])["name"] == "t"
    with pytest.raises(UserError):
        read_consolidated(tmp_path / "missing.safetensors")


@pytest.mark.interop
def test_consolidated_file_loads_into_transformers(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    write_tp2_checkpoint(tmp_path, 1)
    path = tmp_path / "model.safetensors"
    ckpt.consolidate(ckpt.step_dir(tmp_path, 1), path, SPEC)
    spec, tensors = read_consolidated(path)
    config = transformers.GPT2Config(vocab_size=spec.vocab, n_positions=spec.seq_len,
                                     n_embd=spec.hidden, n_layer=spec.layers,
                                     n_head=spec.heads, activation_function="gelu_new")
    model = transformers.GPT2LMHeadModel(config).eval()
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    assert not unexpected and not [m for m in missing if "lm_head" not in m and "attn.bias" not in m]
    model.tie_weights()
    tokens = np.random.default_rng(0).integers(0, spec.vocab, size=(2, spec.seq_len))
    with torch.no_grad():
        ref = model(torch.from_numpy(tokens)).logits.numpy()
    np.testing.assert_allclose(forward_logits(tensors, spec, tokens), ref, atol=1e-4)


def test_prune_keeps_the_newest_checkpoints(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        (tmp_path / "checkpoints" / f"step_{step:07d}").mkdir(parents=True)
    deleted = ckpt.prune_checkpoints(tmp_path, keep=2)
    assert sorted(d.name for d in deleted) == ["step_0000010", "step_0000020"]
    assert [d.name for d in ckpt.list_checkpoints(tmp_path)] == ["step_0000040", "step_0000030"]
