"""Building a release: contents, checksums, archive, model card, and refusing bad input."""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from fugaku_sim.errors import UserError
from fugaku_sim.release.build import ReleaseInputs, build_release
from fugaku_sim.release.checksums import read_checksums, sha256_file
from fugaku_sim.release.verify import REQUIRED_FILES, verify_release


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def test_release_has_every_file_listed_and_verifies(built_release):
    names = sorted(p.name for p in built_release.iterdir())
    assert names == sorted(REQUIRED_FILES)
    sums = read_checksums(built_release / "SHA256SUMS")
    assert set(sums) == set(REQUIRED_FILES) - {"SHA256SUMS"}
    assert all(sha256_file(built_release / n) == d for n, d in sums.items())
    report = verify_release(built_release)
    assert report["files"] == 8 and report["name"] == "tiny-release"


def test_config_fields_are_gpt2config_fields(built_release, rel_spec):
    cfg = json.loads((built_release / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["n_positions"],
            cfg["vocab_size"], cfg["n_inner"]) == (2, 32, 4, 32, 400, 128)
    assert cfg["activation_function"] == "gelu_new" and cfg["layer_norm_epsilon"] == 1e-5
    assert cfg["tie_word_embeddings"] is True
    assert cfg["resid_pdrop"] == cfg["embd_pdrop"] == cfg["attn_pdrop"] == 0.0
    assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (1, 2)
    gen = json.loads((built_release / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 2


def test_llama_config_fields_are_llamaconfig_fields(llama_release, llama_spec):
    from fugaku_sim.release.hf_config import spec_from_config

    cfg = json.loads((llama_release / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["head_dim"],
            cfg["max_position_embeddings"], cfg["vocab_size"]) == (2, 32, 4, 2, 48, 8, 32, 400)
    assert cfg["hidden_act"] == "silu" and cfg["rms_norm_eps"] == 1e-5
    assert cfg["rope_theta"] == cfg["rope_parameters"]["rope_theta"] == 5000.0
    assert cfg["attention_bias"] is cfg["mlp_bias"] is cfg["tie_word_embeddings"] is False
    # config.json says everything the spec does (the name aside)
    back = spec_from_config(cfg, llama_spec.name, "config.json")
    assert back == llama_spec
    card = (llama_release / "README.md").read_text()
    assert "Llama-style" in card and "4 heads over 2 key/value heads" in card
    assert "separate from the embedding" in card
    assert "llama" in _front_matter(llama_release / "README.md")["tags"]
    with safe_open(str(llama_release / "model.safetensors"), "np") as f:
        assert "model.layers.1.self_attn.k_proj.weight" in f.keys()  # noqa: SIM118
        assert f.get_slice("lm_head.weight").get_shape() == [400, 32]


def test_gpt2_config_round_trips(built_release, rel_spec):
    from fugaku_sim.release.hf_config import spec_from_config

    cfg = json.loads((built_release / "config.json").read_text())
    back = spec_from_config(cfg, rel_spec.name, "config.json")
    assert back == rel_spec.model_copy(update={"ffn_hidden": rel_spec.ffn})  # n_inner given


def test_archive_holds_the_directory(built_release):
    tarball = built_release.parent / f"{built_release.name}.tar.gz"
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name in REQUIRED_FILES:
            member = members[f"{built_release.name}/{name}"]
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            assert data == (built_release / name).read_bytes()
    assert not list(built_release.parent.glob(".*tmp*"))  # no temporaries left behind


def test_model_card_metadata_and_honest_body(built_release, rel_inputs):
    meta = _front_matter(built_release / "README.md")
    assert meta["language"] == ["ja", "en"] and meta["library_name"] == "transformers"
    assert meta["license"] == "apache-2.0"
    results = meta["model-index"][0]["results"]
    ev = json.loads(rel_inputs["eval"].read_text())
    ppl = {r["dataset"]["config"]: r["metrics"][0]["value"] for r in results
           if r["metrics"][0]["type"] == "perplexity"}
    assert ppl["ja"] == pytest.approx(ev["perplexity"]["domains"]["ja"]["perplexity"], rel=1e-4)
    body = (built_release / "README.md").read_text(encoding="utf-8")
    for heading in ("## Training data", "## Training layout and measured throughput",
                    "## Simulator prediction for the same layout", "## Predicted vs measured",
                    "## Evaluation", "## Limitations", "## How to use"):
        assert heading in body
    assert body.count("_Not provided._") == 3  # summary, prediction, comparison
    assert "| ja | 0.6 | 0.6 |" in body  # the manifest's mixture table


def test_card_shows_summary_prediction_and_comparison(rel_inputs, tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    (train / "summary.json").write_text(json.dumps(
        {"model": {"name": "tiny-release"}, "layout": {"tp": 1, "pp": 2, "dp": 1}, "world": 2,
         "steps": 30, "tokens_per_s_mean": 1234.4, "step_time_s_mean": 0.25,
         "breakdown_s_mean": {"compute": 0.1, "pp_comm": 0.01}, "final_train_loss": 5.5,
         "consolidated": "/somewhere/model.safetensors"}))
    pred = tmp_path / "prediction.json"
    pred.write_text(json.dumps({"tp": 1, "pp": 4, "dp": 1, "step_time_s": 0.2,
                                "tokens_per_s": 1500.0, "breakdown_s": {"compute": 0.09}}))
    comp = tmp_path / "compare.json"
    comp.write_text(json.dumps({  # the validate stage's compare.json layout
        "meta": {"cluster": "local-calibrated"}, "summary": {"median_abs_error": 0.2},
        "runs": [{"label": "tiny tp1 pp2 dp1", "tp": 1, "pp": 2, "dp": 1,
                  "measured_step_s": 0.25, "predicted_step_s": 0.2, "error": -0.2,
                  "measured_breakdown_s": {"compute": 0.1}}]}))
    directory, _, notes = build_release(ReleaseInputs(
        checkpoint=rel_inputs["checkpoint"], data_dir=rel_inputs["data"],
        eval_json=rel_inputs["eval"], out_dir=tmp_path / "rel", train_dir=train,
        prediction=pred, compare=comp, name="with-extras"))
    body = (directory / "README.md").read_text(encoding="utf-8")
    assert notes == []
    assert ("Measured throughput: **1,234 tokens/s**, 0.25 s per step (tp 1, pp 2, dp 1; "
            "world size 2)") in body
    assert "| breakdown_s_mean.pp_comm | 0.01 |" in body and "| final_train_loss | 5.5 |" in body
    assert "/somewhere" not in body  # local paths stay out of the card
    assert "| breakdown_s.compute | 0.09 |" in body
    assert "| label | tp | pp | dp | measured_step_s | predicted_step_s | error |" in body
    assert "| tiny tp1 pp2 dp1 | 1 | 2 | 1 | 0.25 | 0.2 | -0.2 |" in body
    assert "| summary.median_abs_error | 0.2 |" in body
    assert "prediction is for another layout (pp 4 predicted vs 2 trained)" in body
    verify_release(directory)


@pytest.mark.hostile
def test_eval_of_other_weights_is_refused(rel_inputs, tmp_path):
    ev = json.loads(rel_inputs["eval"].read_text())
    ev["model"]["weights_sha256"] = "0" * 64
    other = tmp_path / "eval.json"
    other.write_text(json.dumps(ev))
    with pytest.raises(UserError, match="other weights"):
        build_release(ReleaseInputs(checkpoint=rel_inputs["checkpoint"],
                                    data_dir=rel_inputs["data"], eval_json=other,
                                    out_dir=tmp_path / "rel"))
    assert not (tmp_path / "rel" / "tiny-release").exists()


@pytest.mark.hostile
@pytest.mark.parametrize("change, message", [
    ({"data_dir": Path("/nonexistent/data")}, "data directory not found"),
    ({"eval_json": Path("/nonexistent/eval.json")}, "eval.json"),
    ({"checkpoint": Path("/nonexistent/model.safetensors")}, "model.safetensors: no such file"),
    ({"name": "../escape"}, "release name"),
])
def test_bad_inputs_are_one_line_user_errors(rel_inputs, tmp_path, change, message):
    base = {"checkpoint": rel_inputs["checkpoint"], "data_dir": rel_inputs["data"],
            "eval_json": rel_inputs["eval"], "out_dir": tmp_path / "rel"}
    with pytest.raises(UserError, match=message) as info:
        build_release(ReleaseInputs(**{**base, **change}))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "rel").exists() or not any((tmp_path / "rel").iterdir())


def test_no_release_file_holds_a_path_of_the_build_machine(rel_inputs, tmp_path):
    """Inputs that record paths (eval.json's sources, the manifest's stdlib origin, the
    training summary, the comparison's profile, the trainer's sample in tokenizer.model)
    leave none in any release file, text or binary."""
    from fugaku_sim.io import read_json_object, write_json

    data = tmp_path / "data"
    shutil.copytree(rel_inputs["data"], data)
    stdlib = sysconfig.get_paths()["stdlib"]
    manifest = read_json_object(data / "manifest.json", "manifest")
    manifest["sources"]["python-stdlib"] = {
        "kind": "python-stdlib", "domain": "code", "licence": "PSF-2.0",
        "origin": f"python 3.11.2 {stdlib}", "documents": 3}
    write_json(data / "manifest.json", manifest)
    train = tmp_path / "train"
    train.mkdir()
    write_json(train / "summary.json", {"steps": 10, "world": 1, "tokens_per_s_mean": 10.0,
                                        "checkpoint": str(train / "run" / "step_10"),
                                        "python": sys.executable, "out_dir": str(train)})
    compare = tmp_path / "compare.json"
    write_json(compare, {"meta": {"profile": str(Path.cwd() / "clusters" / "local.yaml")},
                         "runs": [{"label": "run", "log": str(train / "metrics.jsonl")}]})
    directory, _, _ = build_release(ReleaseInputs(
        checkpoint=rel_inputs["checkpoint"], data_dir=data, eval_json=rel_inputs["eval"],
        out_dir=tmp_path / "rel", train_dir=train, compare=compare))
    machine = {str(rel_inputs["root"]), str(tmp_path), stdlib, sys.prefix, sys.base_prefix,
               sys.executable, str(Path.home()), str(Path.cwd()), "/root/", "/work/", "/tmp/",
               "/home/"}
    assert "python3" in (directory / "README.md").read_text(encoding="utf-8")
    for path in directory.iterdir():
        content = path.read_bytes()
        leaks = [m for m in machine if m.encode() in content]
        assert leaks == [], f"{path.name} holds {leaks}"
    verify_release(directory)


def test_a_failed_build_leaves_neither_folder_nor_tarball(rel_inputs, tmp_path, monkeypatch):
    """The tarball is written inside the all-or-nothing block: a failure while archiving
    leaves no release folder without its tarball (and no temporary files)."""
    import fugaku_sim.release.build as build

    def fail(*args):
        raise UserError("disk full (simulated)")

    monkeypatch.setattr(build, "_archive", fail)
    out = tmp_path / "rel"
    with pytest.raises(UserError, match="disk full"):
        build_release(ReleaseInputs(checkpoint=rel_inputs["checkpoint"],
                                    data_dir=rel_inputs["data"], eval_json=rel_inputs["eval"],
                                    out_dir=out))
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.hostile
def test_an_output_folder_that_is_a_file_is_refused_before_work(rel_inputs, tmp_path):
    out = tmp_path / "rel"
    out.write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        build_release(ReleaseInputs(checkpoint=rel_inputs["checkpoint"],
                                    data_dir=rel_inputs["data"], eval_json=rel_inputs["eval"],
                                    out_dir=out))
    assert out.read_text() == "not a folder"
