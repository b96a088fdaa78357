"""Test fixtures: a tiny data directory in the data stage's format and random GPT-2 weights,
for the tests of ``evaluate`` and ``release`` (without running the data stage or the trainer).

The text is generated from a few templates (Japanese, English, code, maths) with a seeded
generator; the tokenizer is a real sentencepiece model trained on it (byte fallback, ids as
the data stage uses: unk 0, bos 1, eos 2 = EOD). Nothing here is a result: it is input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fugaku_sim.spec import ModelSpec

_JA_SUBJECTS = ["富岳", "研究者", "学生", "計算機", "言語モデル", "猫", "先生", "東京の町"]
_JA_PREDICATES = ["は大きな計算を行います", "は日本語の文章を学びます", "は毎日本を読みます",
                  "は新しい方法を考えました", "は静かに動いています", "は山の上にあります",
                  "は速く走ります", "は友達と話しました"]
_EN_SUBJECTS = ["The machine", "A student", "The model", "Our team", "The cat", "A teacher",
                "The network", "Every node"]
_EN_PREDICATES = ["computes the answer", "reads a long book", "learns new words",
                  "sends a message", "sleeps in the sun", "writes a short story",
                  "runs very fast", "talks with a friend"]


def _ja_doc(rng: np.random.Generator) -> str:
    n = int(rng.integers(3, 7))
    return "".join(f"{_JA_SUBJECTS[rng.integers(8)]}{_JA_PREDICATES[rng.integers(8)]}。"
                   for _ in range(n))


def _en_doc(rng: np.random.Generator) -> str:
    n = int(rng.integers(3, 7))
    return " ".join(f"{_EN_SUBJECTS[rng.integers(8)]} {_EN_PREDICATES[rng.integers(8)]}."
                    for _ in range(n))


def _code_doc(rng: np.random.Generator) -> str:
    a, b = (int(x) for x in rng.integers(1, 50, size=2))
    return f"def f(x):\n    return x * {a} + {b}\n\nprint(f({a}))\n"


def _maths_doc(rng: np.random.Generator) -> str:
    lines = []
    for _ in range(int(rng.integers(3, 6))):
        a, b = (int(x) for x in rng.integers(0, 30, size=2))
        lines.append(f"{a} + {b} = {a + b}\n")
    return "".join(lines)


_MAKERS = {"ja": _ja_doc, "en": _en_doc, "code": _code_doc, "maths": _maths_doc}


def synthetic_texts(seed: int, docs_per_domain: int) -> dict[str, list[str]]:
    """``docs_per_domain`` generated documents for each of ja, en, code, maths."""
    rng = np.random.default_rng(seed)
    return {d: [make(rng) for _ in range(docs_per_domain)] for d, make in _MAKERS.items()}


def indented_documents(texts: dict[str, list[str]], n: int, lines: int = 400) -> list[str]:
    """Code-like documents: lines of ``texts`` behind runs of 0-19 spaces, which pieces of
    one to many spaces cover in many ways of equal score (where float32 rounding decides
    between them in sentencepiece)."""
    rng = np.random.default_rng(0)
    domains = sorted(texts)
    return ["".join(" " * int(rng.integers(0, 20))
                    + texts[str(d)][int(rng.integers(len(texts[str(d)])))] + "\n"
                    for d in rng.choice(domains, size=lines)) for _ in range(n)]


# the data stage's sentencepiece options (fugaku_sim.data.tokenizer), small-corpus settings
TOKENIZER_OPTIONS = {
    "model_type": "unigram", "character_coverage": 0.98, "byte_fallback": True, "unk_id": 0,
    "bos_id": 1, "eos_id": 2, "pad_id": -1, "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False, "split_digits": True,
    "allow_whitespace_only_pieces": True, "hard_vocab_limit": False, "minloglevel": 2,
    "num_threads": 1}


def train_tokenizer(texts: list[str], prefix: Path, vocab_size: int, rounded: bool = True,
                    **options: object) -> Path:
    """Train a small sentencepiece model (byte fallback, unk 0 / bos 1 / eos 2; scores
    rounded as the data stage rounds them unless ``rounded`` is false); ``options`` override
    :data:`TOKENIZER_OPTIONS` (``model_type="bpe"``, sentencepiece's defaults ...)."""
    import sentencepiece as spm

    from fugaku_sim.data.tokenizer import quantize_scores

    sample = prefix.with_suffix(".txt")
    sample.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(sample), model_prefix=str(prefix),
                                   vocab_size=vocab_size, **{**TOKENIZER_OPTIONS, **options})
    sample.unlink()
    if rounded:
        quantize_scores(prefix.with_suffix(".model"), prefix.with_suffix(".vocab"))
    return prefix.with_suffix(".model")


def write_data_dir(root: str | Path, seed: int = 0, docs_per_domain: int = 40,
                   vocab_size: int = 400) -> Path:
    """Write a data directory (tokenizer, test shards, blend, held-out, maths, manifest)."""
    from fugaku_sim.data.blend import Blend, BlendEntry, write_blend
    from fugaku_sim.data.indexed import IndexedDatasetWriter
    from fugaku_sim.evaluate.tokenizer import Tokenizer

    root = Path(root)
    (root / "heldout").mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    texts = synthetic_texts(seed, docs_per_domain)
    train_tokenizer([t for ts in texts.values() for t in ts], root / "tokenizer", vocab_size)
    tok = Tokenizer(root / "tokenizer.model")
    tests = []
    for domain, docs in texts.items():
        with open(root / "heldout" / f"{domain}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs)
        with IndexedDatasetWriter(root / "shards" / f"{domain}_test", np.uint16) as w:
            for t in docs:
                w.add_document(np.asarray(tok.encode(t) + [tok.eod_id]))
            tests.append(BlendEntry(domain=domain, prefix=f"shards/{domain}_test", weight=1.0,
                                    tokens=w.num_tokens))
    write_blend(root, Blend(tokenizer="tokenizer.model", eod_id=tok.eod_id,
                            vocab_size=tok.vocab_size, splits={"test": tuple(tests)}))
    rng = np.random.default_rng([seed, 7])
    with open(root / "maths_eval.jsonl", "w", encoding="utf-8") as f:
        for _ in range(10):
            a, b = (int(x) for x in rng.integers(30, 60, size=2))
            f.write(json.dumps({"prompt": f"{a} + {b} =", "answer": str(a + b)}) + "\n")
    # the data stage's manifest layout (fugaku_sim.data.manifest), with made-up shares
    shares = {"ja": 0.6, "en": 0.2, "code": 0.1, "maths": 0.1}
    manifest = {
        "mixture": {"total_train_tokens": 0, "max_epochs": 1.0,
                    "domains": {d: {"target_share": s, "achieved_share": s}
                                for d, s in shares.items()}},
        "sources": {f"synthetic-{d}": {"kind": "synthetic", "domain": d,
                                       "licence": "CC0-1.0 (generated)", "documents": len(t)}
                    for d, t in texts.items()},
        "note": "synthetic data directory (test fixture)"}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def random_params(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """GPT-2-style random weights (normal, std 0.02; layer norms perturbed around 1 and 0 so
    that tests exercise them), float32, with the checkpoint's names and shapes."""
    from fugaku_sim.tensors import tensor_table

    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, shape in tensor_table(spec).checkpoint_shapes().items():
        if ".ln_" in name and name.endswith(".weight"):
            arr = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            arr = 0.02 * rng.standard_normal(shape)
        params[name] = arr.astype(np.float32)
    return params
