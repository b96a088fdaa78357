"""Fixtures for the data tests; the corpora themselves live in ``data_corpus``."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's download cache from tests."""
    monkeypatch.setenv("FUGAKU_SIM_CACHE", str(tmp_path / "cache"))

