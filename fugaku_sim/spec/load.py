"""Loaders: a preset name or a YAML path in, a validated spec out, or a one-line SpecError.

Cluster profiles live in the repository's ``clusters/`` folder (or a folder named by
``FUGAKU_SIM_CLUSTERS``); model presets ship inside the package (``spec/presets``). A model
preset may carry the reference training settings and layout of the model (Fugaku-LLM's
recomputation on stages 0-3, say) and the settings of its production campaign (evaluation and
checkpoint intervals, elapsed time per job) that the command line starts from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.io import is_file, read_text
from fugaku_sim.spec.campaign import CampaignSettings
from fugaku_sim.spec.cluster import ClusterSpec
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.model import ModelSpec
from fugaku_sim.spec.train import TrainSpec

MODEL_PRESET_DIR = Path(__file__).resolve().parent / "presets"
REPO_CLUSTER_DIR = Path(__file__).resolve().parents[2] / "clusters"

M = TypeVar("M", bound=BaseModel)


def cluster_dirs() -> list[Path]:
    """Folders searched for cluster profiles, first match wins."""
    dirs = []
    if env := os.environ.get("FUGAKU_SIM_CLUSTERS"):
        dirs.append(Path(env))
    dirs += [Path.cwd() / "clusters", REPO_CLUSTER_DIR]
    return dirs


#: the largest YAML file a loader takes (the largest shipped spec is about 10 kB)
MAX_YAML_BYTES = 4 * 2**20
#: deepest nesting of mappings and lists (a spec file nests four or five levels)
MAX_YAML_DEPTH = 32
#: most values a YAML document may expand to once its aliases are followed: a "billion
#: laughs" document of a few lines would otherwise expand to billions in every consumer
#: that walks it (validation, a JSON schema check, a dump)
MAX_YAML_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that run code) that also refuses duplicate keys,
    which plain YAML loaders resolve silently by keeping the last one, and nesting deeper
    than :data:`MAX_YAML_DEPTH` while it composes (before Python's recursion limit)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels at line "
                                     f"{mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # ``<<: *base`` merges are overrides by design
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise yaml.YAMLError(f"an unhashable mapping key at line "
                                         f"{key_node.start_mark.line + 1}") from None
                if duplicate:
                    raise yaml.YAMLError(f"duplicate key {key!r} at line "
                                         f"{key_node.start_mark.line + 1} (which one is meant?)")
        return super().construct_mapping(node, deep=deep)


def _node_children(node: Any) -> list[Any]:
    """The child nodes of a composed YAML node (keys and values of a mapping)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _value_children(value: Any) -> list[Any]:
    """The items of a loaded list, or the keys and values of a loaded mapping."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, dict):
        return [v for pair in value.items() for v in pair]
    return []


def _check_expansion(root: Any, children: Callable[[Any], list[Any]] = _node_children) -> None:
    """Refuse a graph (YAML nodes, or a loaded value) that expands, aliases followed, beyond
    :data:`MAX_YAML_NODES` values or :data:`MAX_YAML_DEPTH` levels, or refers to itself.
    Each node is visited once: an alias is the same object, so its expanded size is
    memoised.

    Raises:
        yaml.YAMLError: the limit broken, in words.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values when expanded, depth)
    active: set[int] = set()

    def walk(node: Any) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.YAMLError("an alias refers to the mapping or list that holds it")
        active.add(key)
        count, depth = 1, 0
        for child in children(node):
            c, d = walk(child)
            count, depth = count + c, max(depth, d)
            if count > MAX_YAML_NODES:
                raise yaml.YAMLError(f"expands to more than {MAX_YAML_NODES} values once its "
                                     "aliases are followed")
        if depth + 1 > MAX_YAML_DEPTH:
            raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels once its "
                                 "aliases are followed")
        active.discard(key)
        sizes[key] = (count, depth + 1)
        return sizes[key]

    walk(root)


def check_loaded_size(value: Any, source: str) -> None:
    """The limits of :func:`parse_yaml` on a value another loader made (Snakemake's config):
    an alias bomb is refused before anything walks it (a JSON schema check would take
    hours).

    Raises:
        SpecError: ``source: expands to more than ... values`` (or nested too deeply).
    """
    try:
        _check_expansion(value, _value_children)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source or 'config'}: {exc}") from None


def parse_yaml(text: str, source: str) -> Any:
    """The value of the YAML document ``text`` (read from ``source``), with the limits of
    :class:`_StrictLoader` and :func:`_check_expansion`.

    Raises:
        SpecError: ``source: line L column C: YAML syntax error: ...``, a duplicate key, an
            alias bomb, nesting too deep, more than one document.
    """
    loader = None
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        char = exc.character  # a code point, or a byte of undecodable input
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise SpecError(f"{source}: YAML syntax error: {exc.reason} (character {shown} at "
                        f"position {exc.position})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)  # "expected a single document in the stream"
        if context and getattr(exc, "problem", None):
            problem = f"{context}, {problem}"
        raise SpecError(f"{source}:{where} YAML syntax error: {problem}") from None
    except (ValueError, OverflowError) as exc:  # 5,000 digits; a date such as 2024-13-45
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise SpecError(f"{source}: YAML syntax error: a value that cannot be read "
                        f"({first})") from None
    except RecursionError:
        raise SpecError(f"{source}: YAML syntax error: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path, what: str | None = None) -> dict[str, Any]:
    """Parse the YAML mapping in the file at ``path`` (see :func:`parse_yaml`; at most
    :data:`MAX_YAML_BYTES`, UTF-8, a regular file).

    ``what`` names the file in messages (default: the path).

    Raises:
        SpecError: the file is missing, unreadable, too large, not UTF-8, not YAML, breaks a
            limit of :func:`parse_yaml`, or is not a mapping.
    """
    source = what or str(path)
    try:
        text = read_text(path, source, kind="YAML file", max_bytes=MAX_YAML_BYTES)
    except UserError as exc:
        raise SpecError(str(exc)) from None
    data = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of keys to values at the top level")
    return data


def validation_message(exc: ValidationError, source: str, prefix: str = "") -> str:
    """Turn pydantic's error into one line: ``source: dotted.path: what is wrong``.

    An unknown key is reported before anything else: a misspelt key also makes the right
    key look missing, and the misspelling is what the user has to fix.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = str(err["msg"]).removeprefix("Value error, ")
    field, sep, rest = msg.partition(": ")
    if err["type"] == "value_error" and sep and field.replace(".", "").replace("_", "").isalnum():
        loc, msg = ".".join(p for p in (loc, field) if p), rest  # a validator naming its field
    path = ".".join(p for p in (prefix, loc) if p)
    if err["type"] == "extra_forbidden":
        msg = "unknown key (misspelt?)"
    elif err["type"] == "missing":
        msg = "missing required key"
    elif "input" in err and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    head = f"{source}: " if source else ""
    return f"{head}{path or '(top level)'}: {msg}{more}"


def validate_section(model: type[M], data: Any, source: str, prefix: str = "") -> M:
    """Validate ``data`` as ``model``, reporting the first error on one line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, source, prefix)) from None


def is_path_ref(ref: str) -> bool:
    """Whether a preset reference is a file path rather than a name."""
    return "/" in ref or ref.endswith((".yaml", ".yml")) or is_file(ref)


def resolve_named_yaml(ref: str, dirs: list[Path], option: str, noun: str) -> Path:
    """``ref`` as a path, else ``<ref>.yaml`` in the first of ``dirs`` that has it.

    Raises:
        SpecError: ``<option>: no <noun> 'ref'; known: ...`` when no folder has it.
    """
    if is_path_ref(ref):
        return Path(ref)
    for folder in dirs:
        candidate = folder / f"{ref}.yaml"
        if is_file(candidate):
            return candidate
    names = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise SpecError(f"{option}: no {noun} {ref!r}; known: {', '.join(names) or 'none'}")


def resolve_cluster_path(ref: str) -> Path:
    """The YAML file for a cluster preset name or path."""
    return resolve_named_yaml(ref, cluster_dirs(), "--cluster", "cluster preset")


def load_cluster(ref: str) -> ClusterSpec:
    """Load a cluster profile by preset name (``fugaku``) or path."""
    path = resolve_cluster_path(ref)
    return validate_section(ClusterSpec, read_yaml(path), str(path))


@dataclass(frozen=True)
class ModelPreset:
    """A model with the reference training settings, layout and campaign it ships with."""

    model: ModelSpec
    train: dict[str, Any] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)
    campaign: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def model_preset_names() -> list[str]:
    return sorted(p.stem for p in MODEL_PRESET_DIR.glob("*.yaml"))


def load_model_preset(ref: str) -> ModelPreset:
    """Load a model preset by name (``fugaku-llm-13b``) or path.

    The file holds ``model:`` and optionally ``train:``, ``layout:`` and ``campaign:`` sections;
    the optional sections are validated here (as complete specs where they are complete) and returned as
    plain mappings so the command line can override single fields.
    """
    if is_path_ref(ref):
        path = Path(ref)
    else:
        path = MODEL_PRESET_DIR / f"{ref}.yaml"
        if not is_file(path):
            known = ", ".join(model_preset_names())
            raise SpecError(f"--model: no model preset {ref!r}; known: {known}")
    data = read_yaml(path)
    unknown = set(data) - {"model", "train", "layout", "campaign"}
    if unknown:
        raise SpecError(f"{path}: {sorted(unknown)[0]}: unknown section (misspelt?)")
    if "model" not in data:
        raise SpecError(f"{path}: model: missing required section")
    model = validate_section(ModelSpec, data["model"], str(path), "model")
    train = data.get("train") or {}
    layout = data.get("layout") or {}
    campaign = data.get("campaign") or {}
    for name, section in (("train", train), ("layout", layout), ("campaign", campaign)):
        if not isinstance(section, dict):
            raise SpecError(f"{path}: {name}: expected a mapping")
    validate_section(Layout, layout, str(path), "layout")
    validate_section(CampaignSettings, campaign, str(path), "campaign")
    if "global_batch" in train:
        validate_section(TrainSpec, train, str(path), "train")
    return ModelPreset(model, dict(train), dict(layout), dict(campaign), str(path))


def load_model(ref: str) -> ModelSpec:
    """Load only the model of a preset name or YAML path."""
    return load_model_preset(ref).model


def dump_yaml(spec: BaseModel) -> str:
    """Serialise a spec to YAML that loads back to an equal spec."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
