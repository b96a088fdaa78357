"""Shared base for the spec models: frozen, strict about unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    """A frozen pydantic model that rejects unknown keys (a misspelt key is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
