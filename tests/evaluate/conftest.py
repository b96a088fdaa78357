"""Fixtures for the evaluate tests: a tiny spec, random weights, a tiny data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.spec import ModelSpec


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    return ModelSpec(name="tiny-test", layers=2, hidden=32, heads=4, seq_len=32, vocab=400)


@pytest.fixture(scope="session")
def tiny_llama_spec() -> ModelSpec:
    """Llama-shaped: RMSNorm, SwiGLU, rotary positions, 4 query heads over 2 key/value heads,
    no biases, untied head."""
    return ModelSpec(name="tiny-llama", layers=2, hidden=32, heads=4, kv_heads=2,
                     ffn_hidden=48, seq_len=32, vocab=400, norm="rmsnorm", mlp="swiglu",
                     positions="rotary", rope_theta=1000.0, bias=False, tied_embeddings=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.evaluate.synthetic import write_data_dir

    return write_data_dir(tmp_path_factory.mktemp("data"), seed=3)
