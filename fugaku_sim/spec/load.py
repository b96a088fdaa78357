"""Loaders: a preset name or a YAML path in, a validated spec out, or a one-line SpecError.

Cluster profiles live in the repository's ``clusters/`` folder (or a folder named by
``FUGAKU_SIM_CLUSTERS``); model presets ship inside the package (``spec/presets``). A model
preset may carry the reference training settings and layout of the model (Fugaku-LLM's
recomputation on stages 0-3, say) and the settings of its production campaign (evaluation and
checkpoint intervals, elapsed time per job) that the command line starts from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fugaku_sim.errors import SpecError
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


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping.

    Raises:
        SpecError: the file is missing, unreadable, not YAML, or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path}:{where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys to values at the top level")
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
    return "/" in ref or ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def resolve_named_yaml(ref: str, dirs: list[Path], option: str, noun: str) -> Path:
    """``ref`` as a path, else ``<ref>.yaml`` in the first of ``dirs`` that has it.

    Raises:
        SpecError: ``<option>: no <noun> 'ref'; known: ...`` when no folder has it.
    """
    if is_path_ref(ref):
        return Path(ref)
    for folder in dirs:
        candidate = folder / f"{ref}.yaml"
        if candidate.is_file():
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
        if not path.is_file():
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
