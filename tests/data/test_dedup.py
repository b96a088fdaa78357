"""Deduplication: exact and near duplicates across sources, and a leak-free split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from data_corpus import EN_SENTENCES, JA_SENTENCES, make_documents

from fugaku_sim.data.config import DataConfig, DedupConfig
from fugaku_sim.data.dedup import (
    cluster_near_duplicates,
    exact_key,
    minhash_signature,
    run_dedup,
    shingle_hashes,
)


def jaccard(a: str, b: str, k: int = 5) -> float:
    sa, sb = set(shingle_hashes(a, k).tolist()), set(shingle_hashes(b, k).tolist())
    return len(sa & sb) / len(sa | sb)


def test_exact_key_ignores_case_and_whitespace() -> None:
    assert exact_key("Hello   World\n") == exact_key("hello world")
    assert exact_key("日本語") != exact_key("日本人")


def test_signature_agreement_estimates_jaccard() -> None:
    cfg = DedupConfig(num_perm=256)
    a = "".join(JA_SENTENCES[:10])
    b = a.replace(JA_SENTENCES[3], JA_SENTENCES[20])
    est = float(np.mean(minhash_signature(a, cfg) == minhash_signature(b, cfg)))
    assert abs(est - jaccard(a, b)) < 0.12


def test_clusters_join_near_duplicates_only() -> None:
    cfg = DedupConfig()
    base = "".join(JA_SENTENCES[:12])
    near = base.replace("。", "！", 1)
    other = "".join(JA_SENTENCES[12:24])
    roots = cluster_near_duplicates([minhash_signature(t, cfg) for t in (base, other, near)], cfg)
    assert roots == [0, 1, 0]


def write_clean(out: Path, records: list[dict]) -> None:
    (out / "clean").mkdir(parents=True)
    names = sorted({r["source"] for r in records})
    for name in names:
        with open(out / "clean" / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                if r["source"] == name:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "clean" / "report.json").write_text(json.dumps({"sources": {n: {} for n in names}}))


def test_split_is_leak_free_across_sources(tmp_path: Path) -> None:
    rng = random.Random(0)
    base_ja = make_documents(JA_SENTENCES, 40, 12, seed=5)
    base_en = make_documents(EN_SENTENCES, 40, 10, seed=6, sep=" ")
    records = []
    for i, text in enumerate(base_ja + base_en):
        domain = "ja" if i < 40 else "en"
        records.append({"id": f"a:{i}", "source": "a", "domain": domain, "text": text})
        if i % 2 == 0:  # a near copy in another source: one sentence-end changed
            near = text.replace("。" if domain == "ja" else ".", "!", 1)
            records.append({"id": f"b:{i}", "source": "b", "domain": domain, "text": near})
        if i % 5 == 0:  # an exact copy (up to case and spacing)
            records.append({"id": f"c:{i}", "source": "c", "domain": domain,
                            "text": "  " + text.upper() if domain == "en" else text})
    rng.shuffle(records)
    cfg = DataConfig(splits={"train": 0.5, "valid": 0.25, "test": 0.25}, workers=1)
    write_clean(tmp_path, records)
    report = run_dedup(cfg, tmp_path)
    assert report["exact"]["removed"] == 16 and report["exact"]["across_sources"] == 16
    assert report["near"]["removed"] == 40
    assert report["documents_kept"] == 80
    splits: dict[str, list[str]] = {}
    for d in ("ja", "en"):
        for s in ("train", "valid", "test"):
            lines = (tmp_path / "dedup" / f"{d}_{s}.jsonl").read_text().splitlines()
            splits.setdefault(s, []).extend(json.loads(x)["text"] for x in lines)
    assert all(splits.values())
    for held in splits["valid"] + splits["test"]:
        assert max(jaccard(held, t) for t in splits["train"]) < 0.8
    leaks = report["near"]["across_splits_leak_avoided"] + report["exact"][
        "across_splits_leak_avoided"]
    assert leaks > 0  # per-document splits would have leaked; per-cluster ones do not
