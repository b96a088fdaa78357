"""`fugaku-sim evaluate` end to end on a tiny data directory, and its bad-input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fugaku_sim.tensors.consolidated import write_consolidated
from tests.evaluate.synthetic import random_params

FAST = ["--max-docs", "10", "--choice-items", "5", "--max-problems", "3",
        "--max-new-tokens", "5", "--seed", "1"]


@pytest.fixture(scope="module")
def checkpoint(tiny_spec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    write_consolidated(path, tiny_spec, random_params(tiny_spec, seed=9))
    return path


def _evaluate(run_cli, *args: str) -> tuple[str, str]:
    status, out, err = run_cli("evaluate", *args, *FAST)
    assert status == 0, err
    return out, err


def test_evaluate_writes_json_and_markdown(run_cli, checkpoint, tiny_data, tmp_path):
    out, err = _evaluate(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
                         "--out", str(tmp_path / "eval"))
    assert "perplexity: ja" in out and "chance 0.250" in out
    # progress lines on stderr (not a terminal): each section starts and ends with one
    for task, total in (("perplexity maths windows", None), ("arithmetic problems", 3),
                        ("samples", 4)):
        ends = [line for line in err.splitlines() if line.startswith(f"evaluate: {task} ")
                and "(100%)" in line]
        assert ends and (total is None or f" {total}/{total} " in ends[-1]), (task, err)
    result = json.loads((tmp_path / "eval" / "eval.json").read_text(encoding="utf-8"))
    assert result["schema"] == "fugaku-sim/eval/1"
    for domain in ("ja", "en", "code", "maths"):
        r = result["perplexity"]["domains"][domain]
        assert r["documents"] == 10 and r["source"].startswith("shards")
        assert r["perplexity"] == pytest.approx(math.exp(r["nll_nats"] / r["tokens"]))
    assert result["arithmetic"]["problems"] == 3
    for task in ("ja_continuation", "en_continuation"):
        assert result["multiple_choice"]["tasks"][task]["chance"] == 0.25
    assert [s["language"] for s in result["samples"]] == ["ja", "ja", "en", "en"]
    md = (tmp_path / "eval" / "eval.md").read_text(encoding="utf-8")
    assert "| ja_continuation | acc |" in md and "| 0.250 |" in md


def test_same_seed_same_results(run_cli, checkpoint, tiny_data, tmp_path):
    results = []
    for run in ("a", "b"):
        _evaluate(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
                  "--out", str(tmp_path / run), "--prompt", "ja:富岳は")
        r = json.loads((tmp_path / run / "eval.json").read_text(encoding="utf-8"))
        r.pop("seconds")
        r["data"].pop("dir")
        results.append(r)
    assert results[0] == results[1]


def test_evaluate_a_release_gives_the_checkpoints_numbers(run_cli, checkpoint, tiny_data,
                                                          tmp_path):
    from fugaku_sim.release.build import ReleaseInputs, build_release

    _evaluate(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
              "--out", str(tmp_path / "ev1"))
    rel, _, _ = build_release(ReleaseInputs(
        checkpoint=checkpoint, data_dir=tiny_data, eval_json=tmp_path / "ev1" / "eval.json",
        out_dir=tmp_path / "rel"))
    _evaluate(run_cli, "--release", str(rel), "--data", str(tiny_data),
              "--out", str(tmp_path / "ev2"))
    one, two = (json.loads((tmp_path / d / "eval.json").read_text(encoding="utf-8"))
                for d in ("ev1", "ev2"))
    assert one["model"]["weights_sha256"] == two["model"]["weights_sha256"]
    assert one["perplexity"] == two["perplexity"]
    assert one["multiple_choice"] == two["multiple_choice"]
    # the release's copy of the tokenizer has no training paths, but is the same model; a
    # model with other scores is another tokenizer
    from fugaku_sim.data.spm_model import read_model, with_scores

    model = rel / "tokenizer.model"
    model.write_bytes(with_scores(model.read_bytes(),
                                  [p.score - 1.0 for p in read_model(model).pieces]))
    _fails(run_cli, "--release", str(rel), "--data", str(tiny_data), *FAST,
           message="tokenizer.model: differs from")


def _fails(run_cli, *args: str, message: str) -> None:
    status, out, err = run_cli("evaluate", *args)
    assert status == 2, (out, err)
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.hostile
def test_missing_data_dir(run_cli, checkpoint, tmp_path):
    _fails(run_cli, "--checkpoint", str(checkpoint), "--data", str(tmp_path / "none"),
           message="data directory not found")
    (tmp_path / "empty").mkdir()
    _fails(run_cli, "--checkpoint", str(checkpoint), "--data", str(tmp_path / "empty"),
           message="tokenizer not found")


@pytest.mark.hostile
def test_missing_checkpoint(run_cli, tiny_data, tmp_path):
    _fails(run_cli, "--checkpoint", str(tmp_path / "x.safetensors"), "--data", str(tiny_data),
           message="no such file")


@pytest.mark.hostile
def test_checkpoint_of_another_shape_than_its_spec(run_cli, tiny_spec, tiny_data, tmp_path):
    from safetensors.numpy import save_file

    params = random_params(tiny_spec, seed=0)
    params["transformer.h.1.mlp.c_fc.weight"] = np.zeros((32, 64), np.float32)
    save_file(params, str(tmp_path / "bad.safetensors"),
              metadata={"model_spec": tiny_spec.model_dump_json()})
    _fails(run_cli, "--checkpoint", str(tmp_path / "bad.safetensors"), "--data",
           str(tiny_data), message="transformer.h.1.mlp.c_fc.weight")


@pytest.mark.hostile
def test_checkpoint_without_spec_or_not_safetensors(run_cli, tiny_spec, tiny_data, tmp_path):
    from safetensors.numpy import save_file

    save_file(random_params(tiny_spec, seed=0), str(tmp_path / "nospec.safetensors"))
    _fails(run_cli, "--checkpoint", str(tmp_path / "nospec.safetensors"), "--data",
           str(tiny_data), message="no model_spec")
    save_file(random_params(tiny_spec, seed=0), str(tmp_path / "badspec.safetensors"),
              metadata={"model_spec": json.dumps({"name": "x", "layers": 0})})
    _fails(run_cli, "--checkpoint", str(tmp_path / "badspec.safetensors"), "--data",
           str(tiny_data), message="invalid 'model_spec' metadata")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04junk")
    _fails(run_cli, "--checkpoint", str(tmp_path / "junk.safetensors"), "--data",
           str(tiny_data), message="cannot read consolidated checkpoint")


@pytest.mark.hostile
def test_tokenizer_larger_than_the_model_vocabulary(run_cli, tiny_data, tmp_path):
    from fugaku_sim.spec import ModelSpec

    small = ModelSpec(name="small-vocab", layers=1, hidden=16, heads=2, seq_len=16, vocab=100)
    write_consolidated(tmp_path / "m.safetensors", small, random_params(small, seed=0))
    _fails(run_cli, "--checkpoint", str(tmp_path / "m.safetensors"), "--data", str(tiny_data),
           message="do not fit the model's vocabulary of 100")


@pytest.mark.hostile
def test_stride_longer_than_seq_len(run_cli, checkpoint, tiny_data):
    _fails(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
           "--stride", "999", message="--stride 999 exceeds")


@pytest.mark.hostile
def test_extra_tensor_in_checkpoint(run_cli, tiny_spec, tiny_data, tmp_path):
    from safetensors.numpy import save_file

    params = {**random_params(tiny_spec, seed=0), "transformer.h.9.extra": np.zeros(3, "f4")}
    save_file(params, str(tmp_path / "extra.safetensors"),
              metadata={"model_spec": tiny_spec.model_dump_json()})
    _fails(run_cli, "--checkpoint", str(tmp_path / "extra.safetensors"), "--data",
           str(tiny_data), message="unexpected tensor transformer.h.9.extra")


@pytest.mark.hostile
@pytest.mark.parametrize(("args", "message"), [
    (["--choices", "1"], "argument --choices: must be at least 2"),
    (["--temperature", "nan"], "argument --temperature: must be a finite number"),
    (["--temperature", "-1"], "argument --temperature: must be >= 0"),
    (["--seed", "-3"], "argument --seed: must be at least 0"),
    (["--maths-shots", "-1"], "argument --maths-shots: must be at least 0"),
])
def test_bad_options_are_refused_before_work(run_cli, checkpoint, tiny_data, tmp_path, args,
                                             message):
    out = tmp_path / "eval"
    _fails(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
           "--out", str(out), *args, message=message)
    assert not out.exists()


@pytest.mark.hostile
def test_an_out_that_is_a_file_is_refused_before_work(run_cli, checkpoint, tiny_data,
                                                      tmp_path):
    out = tmp_path / "eval"
    out.write_text("x")
    _fails(run_cli, "--checkpoint", str(checkpoint), "--data", str(tiny_data),
           "--out", str(out), message="exists and is not a folder")


def test_eval_json_and_md_are_written_together(tmp_path, monkeypatch):
    """A report that fails to render leaves no eval.json without its eval.md."""
    import fugaku_sim.evaluate.report as report
    from fugaku_sim.evaluate.runner import write_results

    def fail(result):
        raise ValueError("render failed")

    monkeypatch.setattr(report, "render_markdown", fail)
    with pytest.raises(ValueError, match="render failed"):
        write_results({"schema": "x"}, tmp_path / "eval")
    assert list((tmp_path / "eval").iterdir()) == []
