"""A seeded fuzzer over every shipped YAML: cluster profiles, model presets, the data preset and
the workflow configs, each mutated (a value replaced by a hostile one, a key dropped or added,
a line doubled, the text cut or a byte flipped) and handed to the command that reads it.

A mutant is either accepted (and then every number the command prints is finite) or refused
the one way the project promises: exit status 2 and one line naming what to fix, never a
traceback. The seeds are fixed, so a failure names the mutant that reproduces it.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from fugaku_sim.spec.load import MODEL_PRESET_DIR, REPO_CLUSTER_DIR

REPO = Path(__file__).resolve().parents[2]
CLUSTERS = sorted(REPO_CLUSTER_DIR.glob("*.yaml"))
MODELS = sorted(MODEL_PRESET_DIR.glob("*.yaml"))
DATA = sorted((REPO / "fugaku_sim" / "data" / "presets").glob("*.yaml"))
WORKFLOW = sorted((REPO / "workflows" / "config").glob("*.yaml"))
#: a layout every shipped cluster takes for gpt2-small (2 nodes of 8 processes at most)
LAYOUT = ["--model", "gpt2-small", "--tp", "1", "--pp", "2", "--dp", "4",
          "--processes-per-node", "8", "--global-batch", "8"]
SMALL_JOB = ["--tp", "1", "--pp", "1", "--dp", "1", "--processes-per-node", "1",
             "--global-batch", "8"]
HOSTILE_VALUES: list[Any] = [
    -1, 0, 1, 0.5, -0.0, 10**9, 2**70, 1e30, -1e30, float("nan"), float("inf"), float("-inf"),
    True, False, None, "", "x", "1e3", [], {}, [1, 2], {"a": 1}, "Ⅻ", "\x00",
]
MUTANTS_PER_CHUNK = 60
CHUNKS = 10  # 600 mutants


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value in a loaded YAML document (mappings and lists included)."""
    found = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _leaves(v, (*path, i))
    return found


def _set(doc: Any, path: tuple[Any, ...], value: Any, drop: bool = False) -> None:
    *parents, last = path
    for p in parents:
        doc = doc[p]
    if drop:
        del doc[last]
    else:
        doc[last] = value


def mutate(text: str, rng: random.Random) -> bytes:
    """One mutant of the YAML ``text``."""
    kind = rng.choice(["value", "value", "value", "drop", "extra", "double", "cut", "flip"])
    if kind in ("double", "cut", "flip"):
        data = bytearray(text.encode())
        if kind == "double":  # most often a duplicate key
            lines = text.splitlines(keepends=True)
            i = rng.randrange(len(lines))
            return "".join(lines[:i + 1] + lines[i:]).encode()
        at = rng.randrange(len(data))
        if kind == "cut":
            return bytes(data[:at])
        data[at] = rng.randrange(256)
        return bytes(data)
    doc = yaml.safe_load(text)
    path = rng.choice(_leaves(doc))
    if kind == "drop":
        _set(doc, path, None, drop=True)
    elif kind == "extra":
        parent_path = path[:-1]
        parent = doc
        for p in parent_path:
            parent = parent[p]
        if isinstance(parent, dict):
            parent["extra_" + rng.choice("abc")] = 1
        else:
            parent.append(rng.choice(HOSTILE_VALUES))
    else:
        _set(doc, path, rng.choice(HOSTILE_VALUES))
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _target(rng: random.Random, tmp: Path, data: bytes, source: Path) -> list[str] | None:
    """The command line that reads a mutant of ``source`` (None: read through the API)."""
    path = tmp / f"mutant{source.suffix}"
    path.write_bytes(data)
    if source in CLUSTERS:
        verb = "predict" if rng.random() < 0.3 else "check"
        return [verb, "--cluster", str(path), *LAYOUT, "--json"]
    if source in MODELS:  # a preset without training settings gets a small job
        preset = yaml.safe_load(source.read_text(encoding="utf-8"))
        small = [] if "global_batch" in (preset.get("train") or {}) else SMALL_JOB
        return ["check", "--cluster", "fugaku", "--model", str(path), *small, "--json"]
    return None


def _api(source: Path, path: Path) -> None:
    """Read a data-preset or workflow-config mutant the way its consumer does."""
    from fugaku_sim.data.config import load_data_config
    from fugaku_sim.io import read_text
    from fugaku_sim.spec.load import parse_yaml
    from fugaku_sim.workflow.config import check_against_schema, check_run, load_workflow_config

    if source in DATA:
        load_data_config(path)
        return
    data = parse_yaml(read_text(path, str(path)), str(path)) or {}
    if not isinstance(data, dict):
        from fugaku_sim.errors import UserError

        raise UserError(f"{path}: expected a mapping")
    check_against_schema(data, "config")
    check_run(load_workflow_config(data, "config"))


@pytest.mark.fuzz
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutants_of_shipped_yaml_are_accepted_or_refused_in_one_line(
        chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    from fugaku_sim.errors import UserError

    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")
    sources = CLUSTERS + MODELS + DATA + WORKFLOW
    refused = 0
    for i in range(MUTANTS_PER_CHUNK):
        seed = chunk * MUTANTS_PER_CHUNK + i
        rng = random.Random(seed)
        source = rng.choice(sources)
        data = mutate(source.read_text(encoding="utf-8"), rng)
        where = f"seed {seed}: {source.name}"
        argv = _target(rng, tmp_path, data, source)
        if argv is None:
            path = tmp_path / "mutant.yaml"
            path.write_bytes(data)
            try:
                _api(source, path)
            except UserError as exc:
                refused += 1
                assert "\n" not in str(exc) and str(exc), where
            continue
        status, out, err = run_cli(*argv)
        assert "Traceback" not in err, (where, err[-2000:])
        if status == 0:
            assert _finite(json.loads(out)), (where, "a non-finite number accepted", out[:2000])
            continue
        refused += 1
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1, (where, status, err[-2000:])
        assert lines[0].startswith("fugaku-sim: error: "), (where, lines[0])
    assert refused > MUTANTS_PER_CHUNK // 4  # the mutants are hostile, not no-ops


def test_every_shipped_yaml_is_accepted_unmutated(tmp_path: Path, run_cli) -> None:
    """The fuzzer's baseline: each source itself passes its consumer."""
    for source in CLUSTERS + MODELS:
        argv = _target(random.Random(1), tmp_path, source.read_bytes(), source)
        assert argv is not None
        status, _, err = run_cli(*argv)
        assert status == 0, (source.name, err)
    for source in DATA + WORKFLOW:
        (tmp_path / "mutant.yaml").write_bytes(source.read_bytes())
        _api(source, tmp_path / "mutant.yaml")
