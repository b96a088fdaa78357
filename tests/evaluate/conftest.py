"""Fixtures for the evaluate tests: a tiny spec, random weights, a tiny data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.spec import ModelSpec


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    return ModelSpec(name="tiny-test", layers=2, hidden=32, heads=4, seq_len=32, vocab=400)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.evaluate.synthetic import write_data_dir

    return write_data_dir(tmp_path_factory.mktemp("data"), seed=3)
