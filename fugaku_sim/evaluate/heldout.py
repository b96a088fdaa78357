"""The data stage's held-out material, read defensively from its output directory.

Layout (data stage contract, ``results/data``):

- ``tokenizer.model`` (sentencepiece) and ``blend.json`` (:mod:`fugaku_sim.data.blend`),
  whose test split names Megatron indexed shards (documents already end with EOD);
- ``heldout/<domain>.jsonl``: lines ``{"text": ...}``, the test-split documents per domain;
- ``maths_eval.jsonl``: lines ``{"prompt": ..., "answer": ...}``, arithmetic disjoint from
  training by operands;
- ``manifest.json``: sources and the mixture table (read by the release).
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.data.blend import BLEND_FILE, Blend, read_blend
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object, read_text


def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file as a dict that has ``fields`` (string values).

    Raises:
        UserError: unreadable, not a regular file, not UTF-8 (the one reader's words), a
            line that is not JSON or lacks a field (line named).
    """
    rows: list[dict[str, Any]] = []
    text = read_text(path, str(path), "rerun `fugaku-sim data`", "JSON Lines file")
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            raise UserError(f"{path}:{n}: not a JSON object") from None
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in fields):
            raise UserError(f"{path}:{n}: needs string fields {', '.join(fields)}")
        rows.append(row)
    return rows


def pick(n: int, limit: int | None, seed: int, key: str) -> list[int]:
    """Indices of at most ``limit`` of ``n`` items: a seeded subset, in ascending order."""
    if limit is None or n <= limit:
        return list(range(n))
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return sorted(int(i) for i in rng.choice(n, size=limit, replace=False))


@dataclass
class DataDir:
    """A data stage output directory: its blend (if any) and paths of held-out files."""

    path: Path
    blend: Blend | None

    @classmethod
    def open(cls, path: str | Path) -> DataDir:
        """Check the directory and read ``blend.json`` when present.

        Raises:
            UserError: no such directory, no ``tokenizer.model``, or a corrupt ``blend.json``.
        """
        root = Path(path)
        if not root.is_dir():
            raise UserError(f"{root}: data directory not found; run `fugaku-sim data` first")
        blend = read_blend(root) if (root / BLEND_FILE).is_file() else None
        data = cls(root, blend)
        if not data.tokenizer_path.is_file():
            raise UserError(f"{data.tokenizer_path}: tokenizer not found; run `fugaku-sim data` "
                            "first")
        return data

    @property
    def tokenizer_path(self) -> Path:
        """The sentencepiece model: the blend's ``tokenizer`` (relative to the directory),
        else ``tokenizer.model``."""
        name = self.blend.tokenizer if self.blend else None
        return self.path / (name or "tokenizer.model")

    @property
    def eod_id(self) -> int | None:
        return self.blend.eod_id if self.blend else None

    def test_shards(self, domain: str) -> list[Path]:
        """Shard prefixes of ``domain`` in the blend's test split (may be empty)."""
        shards = self.blend.shards("test", self.path) if self.blend else []
        return [s.prefix for s in shards if s.domain == domain]

    def heldout_file(self, domain: str) -> Path:
        return self.path / "heldout" / f"{domain}.jsonl"

    def heldout_texts(self, domain: str, limit: int | None = None, seed: int = 0) -> list[str]:
        """Texts of ``domain``'s held-out documents (a seeded subset of ``limit``), or []."""
        path = self.heldout_file(domain)
        if not path.is_file():
            return []
        rows = read_jsonl(path, ("text",))
        return [rows[i]["text"] for i in pick(len(rows), limit, seed, f"text:{domain}")]

    def maths_problems(self) -> tuple[Path | None, list[tuple[str, str]]]:
        """The held-out arithmetic problems as (prompt, answer), with the file they came from."""
        for path in (self.path / "maths_eval.jsonl", self.path / "raw" / "maths_eval.jsonl"):
            if path.is_file():
                rows = read_jsonl(path, ("prompt", "answer"))
                return path, [(r["prompt"], r["answer"]) for r in rows]
        return None, []

    def manifest(self) -> dict[str, Any] | None:
        """``manifest.json`` as a dict, or None when the directory has none.

        Raises:
            UserError: the manifest is there but unreadable or not a JSON object.
        """
        path = self.path / "manifest.json"
        if not path.exists():
            return None
        return read_json_object(path, str(path), "rerun `fugaku-sim data mix`")


def domain_documents(data: DataDir, domain: str, encode: Any, eod_id: int,
                     limit: int | None, seed: int, vocab: int | None = None
                     ) -> tuple[list[np.ndarray], str]:
    """Held-out documents of ``domain`` as token arrays, each ending with EOD.

    Read from the test-split shards named in ``blend.json`` when there are any (exactly the
    tokens training would see), else by encoding ``heldout/<domain>.jsonl`` and appending
    EOD. Returns the documents and a description of where they came from ('' when none).

    Raises:
        UserError: a shard named in the blend is missing or corrupt, or (given ``vocab``, the
            tokenizer's) holds an id outside the vocabulary.
    """
    shards = data.test_shards(domain)
    if shards:
        from fugaku_sim.data.indexed import IndexedDataset, check_token_ids

        docs: list[np.ndarray] = []
        for prefix in shards:
            ds = IndexedDataset(prefix)
            check_token_ids(ds, vocab, vocab_name="the tokenizer's vocabulary")
            docs += [np.asarray(ds[i], dtype=np.int64) for i in range(len(ds))]
        chosen = pick(len(docs), limit, seed, f"shard:{domain}")
        names = ", ".join(os.path.relpath(p, data.path) for p in shards)
        return [docs[i] for i in chosen], f"shards {names}"
    texts = data.heldout_texts(domain, limit, seed)
    if not texts:
        return [], ""
    docs = [np.asarray(encode(t) + [eod_id], dtype=np.int64) for t in texts]
    return docs, f"{data.heldout_file(domain).relative_to(data.path)} (encoded)"
