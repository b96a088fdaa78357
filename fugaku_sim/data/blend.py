"""The blend file: which shards make each split, with what weight (``blend.json``).

The data stage writes it (:mod:`fugaku_sim.data.mixture`), so does the validation's
synthetic data (:mod:`fugaku_sim.calibrate.synthetic`); the trainer, the evaluation and the
release read it. Beside it, ``blend_<split>.txt`` holds the same split in the form of
Megatron-LM's ``--data-path`` (``weight prefix weight prefix ...``).

Shard prefixes are written relative to the folder that holds the blend file, so a data
folder can be moved or copied whole. Files written before that hold absolute prefixes;
both are read (a relative prefix is joined to the folder, an absolute one is kept). Megatron
resolves a relative ``--data-path`` against its working directory: run it from the data
folder, e.g. ``cd results/data && ... --data-path $(cat blend_train.txt)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from fugaku_sim.data.config import SPLITS
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object, read_text, write_json, write_text
from fugaku_sim.spec.base import SpecModel

BLEND_FILE = "blend.json"


def data_path_file(split: str) -> str:
    """The name of a split's Megatron ``--data-path`` file: ``blend_<split>.txt``."""
    return f"blend_{split}.txt"


class BlendEntry(SpecModel):
    """One shard of a split."""

    domain: str
    prefix: str = Field(description="shard path without .bin/.idx, relative to the blend's "
                                    "folder (absolute in older files)")
    weight: float = Field(ge=0, description="share of the split's samples (need not sum to 1)")
    tokens: int | None = Field(default=None, ge=0, description="tokens in the shard")


class Blend(SpecModel):
    """The content of ``blend.json``."""

    tokenizer: str | None = Field(
        default=None, description="sentencepiece model relative to the folder; None: the "
                                  "tokens are synthetic and there is no tokenizer")
    eod_id: int = Field(ge=0, description="the end-of-document token id")
    vocab_size: int = Field(gt=0, description="token ids are below this")
    splits: dict[str, tuple[BlendEntry, ...]]
    synthetic_tokens: int | None = Field(
        default=None, ge=0, description="random tokens per split (synthetic data only)")

    @model_validator(mode="after")
    def _splits_and_weights(self) -> Blend:
        for name, entries in self.splits.items():
            if name not in SPLITS:
                raise ValueError(f"splits.{name}: not one of {', '.join(SPLITS)}")
            if entries and sum(e.weight for e in entries) <= 0:
                raise ValueError(f"splits.{name}: needs a positive weight")
        return self

    def shards(self, split: str, folder: str | Path) -> list[Shard]:
        """The shards of ``split`` (none if the blend has no such split), their prefixes
        resolved against ``folder``, the folder that holds the blend file."""
        return [Shard(e.domain, resolve_prefix(folder, e.prefix), e.weight)
                for e in self.splits.get(split, ())]


@dataclass(frozen=True)
class Shard:
    """A shard ready to open: its domain, path prefix (without .bin/.idx) and weight."""

    domain: str
    prefix: Path
    weight: float


def resolve_prefix(folder: str | Path, prefix: str) -> Path:
    """``prefix`` as a path: relative ones are joined to ``folder``, absolute ones kept."""
    return Path(folder) / prefix


def read_blend(folder: str | Path, what: str = "--data") -> Blend:
    """The blend file of the data folder ``folder``.

    ``what`` names the input in messages (the command-line option that gave the folder).

    Raises:
        UserError: the file is missing (run the data stage), unreadable or malformed (one
            line naming the file and the field).
    """
    from fugaku_sim.spec.load import validate_section

    path = Path(folder) / BLEND_FILE
    hint = ("run `fugaku-sim data mix` first" if not path.exists()
            else "rerun `fugaku-sim data mix`")
    raw = read_json_object(path, f"{what}: {path}", hint)
    return validate_section(Blend, raw, f"{what}: {path}")


def write_blend(folder: str | Path, blend: Blend) -> None:
    """Write ``blend.json`` and a ``blend_<split>.txt`` per split into ``folder``, each
    atomically. Prefixes are written as given (relative to ``folder``)."""
    folder = Path(folder)
    for split, entries in blend.splits.items():
        line = " ".join(f"{e.weight:.10g} {e.prefix}" for e in entries)
        write_text(folder / data_path_file(split), line + "\n")
    write_json(folder / BLEND_FILE, blend.model_dump(mode="json", exclude_none=True))


def read_data_path(path: str | Path) -> list[tuple[float, Path]]:
    """(weight, resolved prefix) pairs of a Megatron ``--data-path`` file (a
    ``blend_<split>.txt``); relative prefixes are resolved against the file's folder.

    Raises:
        UserError: the file is missing, or its words are not weight-prefix pairs.
    """
    path = Path(path)
    words = read_text(path, str(path), "rerun `fugaku-sim data mix`").split()
    try:
        if len(words) % 2:
            raise ValueError
        pairs = [(float(w), resolve_prefix(path.parent, p)) for w, p in zip(words[::2],
                                                                               words[1::2])]
    except ValueError:
        raise UserError(f"{path}: expected 'weight prefix' pairs; rerun `fugaku-sim data "
                        "mix`") from None
    bad = [w for w, _ in pairs if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise UserError(f"{path}: weight {bad[0]} is not a finite number >= 0; rerun "
                        "`fugaku-sim data mix`")
    return pairs
