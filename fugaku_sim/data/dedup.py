"""Stage 3, deduplicate and split: exact and near duplicates across all sources, then
document-level train/valid/test splits assigned per near-duplicate cluster.

* Exact: blake2b of the text case-folded with whitespace runs collapsed; the first copy (in
  source order) is kept.
* Near: MinHash of character ``shingle_chars``-grams (characters, not words, because Japanese
  has no spaces), candidate pairs from datasketch's ``MinHashLSH`` (banded LSH, Leskovec,
  Rajaraman and Ullman, *Mining of Massive Datasets*, ch. 3), confirmed when the signatures
  agree on at least ``near_threshold`` of their slots (the unbiased Jaccard estimate), and
  joined into clusters with union-find; the first document of a cluster is kept.
* Splits: drawn per cluster from a seeded hash of the kept document's exact key, so a cluster
  never straddles splits and nothing near-duplicated leaks from training into evaluation.
  The report counts, for every removed duplicate, whether a per-document split would have
  put it in a different split from its kept copy (a leak avoided).

Signatures are computed with numpy (a polynomial rolling hash of the code points, mixed by the
splitmix64 finaliser, then ``num_perm`` affine permutations mod the Mersenne prime 2^61 - 1 as
in datasketch's MinHash), which is ~100x faster than hashing each shingle in Python.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fugaku_sim.data.collect import Progress, _no_progress
from fugaku_sim.data.config import DOMAINS, SPLITS, DataConfig, DedupConfig, SplitConfig
from fugaku_sim.data.records import parse_record, stage_report
from fugaku_sim.io import atomic_dir, write_json

_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_SPACE = re.compile(r"\s+")
MINHASH_SEED = 42


def canonical_text(text: str) -> str:
    """Text as compared for duplicates: case-folded, whitespace runs made one space."""
    return _SPACE.sub(" ", text.casefold()).strip()


def exact_key(text: str) -> str:
    """Hex blake2b (16 bytes) of :func:`canonical_text`."""
    return hashlib.blake2b(canonical_text(text).encode(), digest_size=16).hexdigest()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(text: str, k: int) -> np.ndarray:
    """Distinct 32-bit hashes of the character ``k``-grams of :func:`canonical_text`."""
    codes = np.frombuffer(canonical_text(text).encode("utf-32-le"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    k = max(1, min(k, len(codes)))
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(1, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            h = h * np.uint64(1_000_003) + codes[j:j + n]
        return np.unique(_splitmix64(h) & _MASK32)


def permutations(num_perm: int, seed: int = MINHASH_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` coefficients of the affine permutations, as datasketch draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(1, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    b = gen.randint(0, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    return a, b


def minhash_signature(text: str, cfg: DedupConfig) -> np.ndarray:
    """``num_perm`` minimum hash values (uint64 < 2^32) of the text's shingles."""
    a, b = permutations(cfg.num_perm)
    hashes = shingle_hashes(text, cfg.shingle_chars)
    sig = np.empty(cfg.num_perm, dtype=np.uint64)
    step = max(1, (1 << 22) // max(1, cfg.num_perm))  # bound the temporary matrix to ~32 MB
    sig[:] = _MASK32
    with np.errstate(over="ignore"):
        for i in range(0, len(hashes), step):
            block = hashes[i:i + step]
            vals = ((a[:, None] * block[None, :] + b[:, None]) % _MERSENNE) & _MASK32
            np.minimum(sig, vals.min(axis=1), out=sig)
    return sig


def assign_split(key: str, seed: int, splits: SplitConfig) -> str:
    """``train``, ``valid`` or ``test`` for a cluster, from a seeded hash of its key."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    if u < splits.train:
        return "train"
    return "valid" if u < splits.train + splits.valid else "test"


@dataclass
class Doc:
    """What dedup keeps in memory per document (the text stays on disk)."""

    index: int
    id: str
    source: str
    domain: str
    key: str
    file: str
    offset: int  # byte offset of the JSON line in ``file``


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _signature_of_line(line: str, cfg: DedupConfig) -> np.ndarray:
    return minhash_signature(json.loads(line)["text"], cfg)


def iter_signatures(lines: Iterator[str], cfg: DedupConfig, workers: int) -> Iterator[np.ndarray]:
    """Signatures of JSON lines in order, in a process pool when ``workers > 1``."""
    if workers <= 1:
        for line in lines:
            yield _signature_of_line(line, cfg)
        return
    with multiprocessing.Pool(workers) as pool:
        yield from pool.imap(partial(_signature_of_line, cfg=cfg), lines, chunksize=8)


def cluster_near_duplicates(signatures: list[np.ndarray], cfg: DedupConfig) -> list[int]:
    """Union-find root of every document: LSH candidates confirmed by signature agreement."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=cfg.near_threshold, num_perm=cfg.num_perm)
    parent = list(range(len(signatures)))
    for i, sig in enumerate(signatures):
        mh = LeanMinHash(seed=MINHASH_SEED, hashvalues=sig, scheme="legacy")
        for j in lsh.query(mh):
            if float(np.mean(signatures[j] == sig)) >= cfg.near_threshold:
                ri, rj = _find(parent, i), _find(parent, j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
        lsh.insert(i, mh)
    return [_find(parent, i) for i in range(len(signatures))]


def scan_documents(clean_dir: Path, names: list[str]) -> list[Doc]:
    """Every cleaned document's id, source, domain, exact key and place on disk."""
    docs: list[Doc] = []
    for name in names:
        path = clean_dir / f"{name}.jsonl"
        with open(path, "rb") as f:
            offset = 0
            for number, raw in enumerate(f, 1):
                rec = parse_record(raw, f"{path}:{number}", "clean")
                docs.append(Doc(len(docs), rec["id"], rec["source"], rec["domain"],
                                exact_key(rec["text"]), str(path), offset))
                offset += len(raw)
    return docs


def iter_lines(docs: list[Doc]) -> Iterator[str]:
    """The JSON lines of ``docs`` (in order), read back from their files."""
    handles: dict[str, Any] = {}
    try:
        for doc in docs:
            if doc.file not in handles:
                handles[doc.file] = open(doc.file, "rb")  # noqa: SIM115  (closed below)
            f = handles[doc.file]
            f.seek(doc.offset)
            yield f.readline().decode("utf-8")
    finally:
        for f in handles.values():
            f.close()


def _count_removed(removed: list[tuple[Doc, Doc]], cfg: DataConfig) -> dict[str, Any]:
    """Counts for (duplicate, kept copy) pairs: by source and by split-if-per-document."""
    c: Counter[str] = Counter()
    for dup, kept in removed:
        c["removed"] += 1
        c["within_source" if dup.source == kept.source else "across_sources"] += 1
        same = assign_split(dup.key, cfg.seed, cfg.splits) == assign_split(
            kept.key, cfg.seed, cfg.splits)
        c["within_split" if same else "across_splits_leak_avoided"] += 1
    keys = ("removed", "within_source", "across_sources", "within_split",
            "across_splits_leak_avoided")
    return {k: int(c[k]) for k in keys}


def deduplicate(docs: list[Doc], cfg: DataConfig, progress: Progress = _no_progress
                ) -> tuple[list[Doc], dict[str, Any]]:
    """The documents to keep (one per exact and near-duplicate cluster) and the counts."""
    first: dict[str, Doc] = {}
    exact: list[tuple[Doc, Doc]] = []
    unique: list[Doc] = []
    for doc in docs:
        if doc.key in first:
            exact.append((doc, first[doc.key]))
        else:
            first[doc.key] = doc
            unique.append(doc)
    sigs = []
    for n, sig in enumerate(iter_signatures(iter_lines(unique), cfg.dedup, cfg.workers), 1):
        progress("minhash", n, len(unique))
        sigs.append(sig)
    roots = cluster_near_duplicates(sigs, cfg.dedup)
    kept = [d for d, r in zip(unique, roots, strict=True) if unique[r] is d]
    near = [(d, unique[r]) for d, r in zip(unique, roots, strict=True) if unique[r] is not d]
    clusters = Counter(roots)
    report = {
        "exact": _count_removed(exact, cfg),
        "near": {**_count_removed(near, cfg),
                 "clusters_with_duplicates": sum(1 for v in clusters.values() if v > 1)},
        "documents_in": len(docs), "documents_kept": len(kept),
        "removed_by_source": {
            "exact": dict(Counter(d.source for d, _ in exact)),
            "near": dict(Counter(d.source for d, _ in near))},
    }
    return kept, report


def run_dedup(cfg: DataConfig, out_dir: Path, progress: Progress = _no_progress) -> dict:
    """Write ``out_dir/dedup/<domain>_<split>.jsonl`` and ``report.json`` (all or nothing).

    Raises:
        UserError: ``clean/`` is missing (run clean first).
    """
    clean_report = stage_report(out_dir, "clean", "clean", ("sources",))
    docs = scan_documents(out_dir / "clean", list(clean_report["sources"]))
    kept, report = deduplicate(docs, cfg, progress)
    table: dict[str, dict[str, dict[str, int]]] = {
        d: {s: {"documents": 0, "characters": 0} for s in SPLITS} for d in DOMAINS}
    by_source: dict[str, Counter[str]] = {}
    with atomic_dir(out_dir / "dedup") as tmp:
        outs = {(d, s): open(tmp / f"{d}_{s}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
                for d in DOMAINS for s in SPLITS}
        try:
            for doc, line in zip(kept, iter_lines(kept), strict=True):
                split = assign_split(doc.key, cfg.seed, cfg.splits)
                rec = json.loads(line)
                outs[(doc.domain, split)].write(line if line.endswith("\n") else line + "\n")
                table[doc.domain][split]["documents"] += 1
                table[doc.domain][split]["characters"] += len(rec["text"])
                c = by_source.setdefault(doc.source, Counter())
                c["documents"] += 1
                c["characters"] += len(rec["text"])
                c[f"documents_{split}"] += 1
        finally:
            for f in outs.values():
                f.close()
        report["splits"] = table
        report["kept_by_source"] = {k: dict(v) for k, v in by_source.items()}
        write_json(tmp / "report.json", report)
    return report
