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


@pytest.fixture(scope="session")
def rel_inputs(tmp_path_factory: pytest.TempPathFactory, rel_spec: ModelSpec) -> dict[str, Path]:
    """Data directory, checkpoint of random weights and its eval.json (real evaluation)."""
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.evaluate.heldout import DataDir
    from fugaku_sim.evaluate.runner import EvalOptions, evaluate_model, write_results
    from fugaku_sim.evaluate.tokenizer import Tokenizer
    from fugaku_sim.tensors.consolidated import write_consolidated
    from tests.evaluate.synthetic import random_params, write_data_dir

    root = tmp_path_factory.mktemp("release-inputs")
    data = write_data_dir(root / "data", seed=5)
    params = random_params(rel_spec, seed=11)
    write_consolidated(root / "model.safetensors", rel_spec, params)
    dd = DataDir.open(data)
    result = evaluate_model(GPT(rel_spec, params), Tokenizer(data / "tokenizer.model"), dd,
                            EvalOptions(**FAST_EVAL), str(root / "model.safetensors"))
    eval_json, _ = write_results(result, root / "eval")
    return {"root": root, "data": data, "checkpoint": root / "model.safetensors",
            "eval": eval_json}


@pytest.fixture(scope="session")
def built_release(rel_inputs: dict[str, Path]) -> Path:
    """A release built once per session; tests that change it work on a copy."""
    from fugaku_sim.release.build import ReleaseInputs, build_release

    directory, _, _ = build_release(ReleaseInputs(
        checkpoint=rel_inputs["checkpoint"], data_dir=rel_inputs["data"],
        eval_json=rel_inputs["eval"], out_dir=rel_inputs["root"] / "release"))
    return directory


@pytest.fixture
def release_copy(built_release: Path, tmp_path: Path) -> Path:
    target = tmp_path / built_release.name
    shutil.copytree(built_release, target)
    return target
