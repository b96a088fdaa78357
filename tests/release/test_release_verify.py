"""`release verify`: a tampered, missing, extra or mis-shaped file fails in one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fugaku_sim.release.checksums import write_checksums


def _fails(run_cli, directory, message):
    status, out, err = run_cli("release", "verify", str(directory))
    assert status == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("fugaku-sim: error:")
    assert message in err
    return err


def test_verify_accepts_the_built_release(run_cli, built_release):
    status, out, err = run_cli("release", "verify", str(built_release))
    assert status == 0, err
    assert "OK (8 files checked" in out


@pytest.mark.hostile
def test_tampered_file_fails(run_cli, release_copy):
    cfg = release_copy / "generation_config.json"
    cfg.write_text(cfg.read_text().replace("0.8", "0.9"))
    _fails(run_cli, release_copy, "generation_config.json: checksum mismatch")


@pytest.mark.hostile
def test_tampered_weights_fail(run_cli, release_copy):
    data = bytearray((release_copy / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (release_copy / "model.safetensors").write_bytes(bytes(data))
    _fails(run_cli, release_copy, "model.safetensors: checksum mismatch")


@pytest.mark.hostile
@pytest.mark.parametrize("name", ["README.md", "tokenizer.model", "tokenizer.json",
                                  "tokenizer_config.json", "SHA256SUMS"])
def test_missing_file_fails(run_cli, release_copy, name):
    (release_copy / name).unlink()
    _fails(run_cli, release_copy, f"{name}: required release file missing")


@pytest.mark.hostile
def test_extra_unlisted_file_fails(run_cli, release_copy):
    (release_copy / "notes.txt").write_text("hello")
    _fails(run_cli, release_copy, "notes.txt: not listed in SHA256SUMS")


@pytest.mark.hostile
def test_listed_pickle_file_fails(run_cli, release_copy):
    (release_copy / "pytorch_model.bin").write_bytes(b"\x80\x04N.")
    names = [p.name for p in release_copy.iterdir() if p.name != "SHA256SUMS"]
    write_checksums(release_copy, names)
    _fails(run_cli, release_copy, "pickle-capable format")


@pytest.mark.hostile
def test_weights_of_another_shape_than_config_fail(run_cli, release_copy):
    cfg = json.loads((release_copy / "config.json").read_text())
    cfg["n_embd"] = 64  # the weights are hidden 32
    (release_copy / "config.json").write_text(json.dumps(cfg))
    names = [p.name for p in release_copy.iterdir() if p.name != "SHA256SUMS"]
    write_checksums(release_copy, names)  # consistent checksums: the shape check must catch it
    _fails(run_cli, release_copy, "does not match model")


@pytest.mark.hostile
def test_tokenizer_json_of_another_model_fails(run_cli, release_copy):
    body = json.loads((release_copy / "tokenizer.json").read_text(encoding="utf-8"))
    body["model"]["vocab"][300][1] -= 1.0  # one piece's score
    (release_copy / "tokenizer.json").write_text(json.dumps(body), encoding="utf-8")
    names = [p.name for p in release_copy.iterdir() if p.name != "SHA256SUMS"]
    write_checksums(release_copy, names)  # consistent checksums: the conversion check catches it
    _fails(run_cli, release_copy, "tokenizer.json: differs from what tokenizer.model converts to")


@pytest.mark.hostile
def test_malformed_checksum_line_fails(run_cli, release_copy):
    (release_copy / "SHA256SUMS").write_text("not a checksum line\n")
    _fails(run_cli, release_copy, "SHA256SUMS:1: not a sha256sum line")


@pytest.mark.hostile
def test_verify_missing_directory(run_cli, tmp_path):
    _fails(run_cli, tmp_path / "nope", "release directory not found")


def test_weights_are_read_without_pickle(built_release):
    """The weights file is safetensors: a JSON header then raw little-endian floats."""
    raw = (built_release / "model.safetensors").read_bytes()
    header_len = int(np.frombuffer(raw[:8], dtype="<u8")[0])
    header = json.loads(raw[8:8 + header_len])
    assert header["__metadata__"]["format"] == "pt"
    assert header["transformer.wte.weight"]["dtype"] == "F32"


@pytest.mark.hostile
@pytest.mark.parametrize("target", ["outside", "inside"])
def test_a_file_that_is_a_symbolic_link_fails(run_cli, release_copy, tmp_path, target):
    """A link passes every checksum (it is read through) but is no file of the release: the
    tarball would store a dangling link."""
    cfg = release_copy / "generation_config.json"
    if target == "outside":
        moved = tmp_path / "elsewhere.json"
        cfg.rename(moved)
    else:
        moved = release_copy / "generation_config.json.real"
        cfg.rename(moved)
    cfg.symlink_to(moved)
    _fails(run_cli, release_copy, "generation_config.json: a symbolic link")


@pytest.mark.hostile
@pytest.mark.parametrize("model", ["a string", ["list"], None])
def test_eval_json_of_the_wrong_shape_fails(run_cli, release_copy, model):
    ev = json.loads((release_copy / "eval.json").read_text())
    (release_copy / "eval.json").write_text(json.dumps({**ev, "model": model}))
    write_checksums(release_copy, [p.name for p in sorted(release_copy.iterdir())
                                   if p.name != "SHA256SUMS"])
    _fails(run_cli, release_copy, "eval.json: describes other weights")


@pytest.mark.hostile
@pytest.mark.parametrize("card", [b"\xff\xfe---\n", b"---\na: 1\na: 2\n---\n",
                                  b"---\n" + b"[" * 100 + b"\n---\n"])
def test_model_card_that_cannot_be_read_fails(run_cli, release_copy, card):
    (release_copy / "README.md").write_bytes(card)
    write_checksums(release_copy, [p.name for p in sorted(release_copy.iterdir())
                                   if p.name != "SHA256SUMS"])
    _fails(run_cli, release_copy, "README.md")


def test_verify_accepts_a_llama_release(run_cli, llama_release):
    status, out, err = run_cli("release", "verify", str(llama_release))
    assert status == 0, err
    assert "OK (8 files checked" in out


@pytest.mark.hostile
@pytest.mark.parametrize(("field", "value", "message"), [
    ("num_key_value_heads", 1, "does not match model"),  # the weights hold 2 kv heads
    ("hidden_act", "gelu", "hidden_act 'gelu' is not supported"),
    ("rope_parameters", {"rope_type": "linear", "factor": 2.0}, "rope_type 'linear'"),
    ("mlp_bias", True, "attention_bias and mlp_bias differ"),
    ("model_type", "mistral", "model_type is 'mistral'"),
])
def test_llama_config_that_does_not_fit_fails(run_cli, llama_release, tmp_path, field, value,
                                              message):
    import shutil

    copy = tmp_path / llama_release.name
    shutil.copytree(llama_release, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg[field] = value
    (copy / "config.json").write_text(json.dumps(cfg))
    write_checksums(copy, [p.name for p in copy.iterdir() if p.name != "SHA256SUMS"])
    _fails(run_cli, copy, message)
