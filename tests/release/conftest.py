"""Fixtures for the release tests: a tiny data directory, checkpoint, evaluation, release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fugaku_sim.spec import ModelSpec

FAST_EVAL = {"max_docs": 12, "max_problems": 4, "choice_items": 6, "max_new_tokens": 6,
             "prompts": (("ja", "富岳は"), ("en", "The model"))}


@pytest.fixture(scope="session")
def rel_spec() -> ModelSpec:
    return ModelSpec(name="tiny-release", layers=2, hidden=32, heads=4, seq_len=32, vocab=400)


def make_inputs(root: Path, spec: ModelSpec) -> dict[str, Path]:
    """Data directory, checkpoint of random weights and its eval.json (real evaluation)."""
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.evaluate.heldout import DataDir
    from fugaku_sim.evaluate.runner import EvalOptions, evaluate_model, write_results
    from fugaku_sim.evaluate.tokenizer import Tokenizer
    from fugaku_sim.tensors.consolidated import write_consolidated
    from tests.evaluate.synthetic import random_params, write_data_dir

    data = write_data_dir(root / "data", seed=5)
    params = random_params(spec, seed=11)
    write_consolidated(root / "model.safetensors", spec, params)
    dd = DataDir.open(data)
    result = evaluate_model(GPT(spec, params), Tokenizer(data / "tokenizer.model"), dd,
                            EvalOptions(**FAST_EVAL), str(root / "model.safetensors"))
    eval_json, _ = write_results(result, root / "eval")
    return {"root": root, "data": data, "checkpoint": root / "model.safetensors",
            "eval": eval_json}


def build(inputs: dict[str, Path]) -> Path:
    from fugaku_sim.release.build import ReleaseInputs, build_release

    directory, _, _ = build_release(ReleaseInputs(
        checkpoint=inputs["checkpoint"], data_dir=inputs["data"],
        eval_json=inputs["eval"], out_dir=inputs["root"] / "release"))
    return directory


@pytest.fixture(scope="session")
def rel_inputs(tmp_path_factory: pytest.TempPathFactory, rel_spec: ModelSpec) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("release-inputs"), rel_spec)


@pytest.fixture(scope="session")
def built_release(rel_inputs: dict[str, Path]) -> Path:
    """A release built once per session; tests that change it work on a copy."""
    return build(rel_inputs)


@pytest.fixture
def release_copy(built_release: Path, tmp_path: Path) -> Path:
    target = tmp_path / built_release.name
    shutil.copytree(built_release, target)
    return target


@pytest.fixture(scope="session")
def llama_spec() -> ModelSpec:
    """Llama-shaped: 4 query heads over 2 key/value heads, no biases, untied head, a rotary
    base other than the default, RMSNorm eps other than transformers' default."""
    return ModelSpec(name="tiny-llama-release", layers=2, hidden=32, heads=4, kv_heads=2,
                     ffn_hidden=48, seq_len=32, vocab=400, norm="rmsnorm", norm_eps=1e-5,
                     mlp="swiglu", positions="rotary", rope_theta=5000.0, bias=False,
                     tied_embeddings=False)


@pytest.fixture(scope="session")
def llama_release(tmp_path_factory: pytest.TempPathFactory, llama_spec: ModelSpec) -> Path:
    return build(make_inputs(tmp_path_factory.mktemp("llama-release"), llama_spec))
