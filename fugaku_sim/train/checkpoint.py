"""Sharded checkpoints that re-shard on load, consolidated into the Hugging Face file.

Layout of ``<out>/checkpoints/step_0000042/`` (42 optimizer steps done):

- ``rank_tp{t}_pp{p}_dp{d}.safetensors``, one per rank that has something to save: the
  rank's part of every tensor but a tied copy (``param/<name>``, data-parallel rank 0 only;
  under ZeRO-3 every rank saves its shard of the flat weights instead, ``param_shard``)
  and its shard of the flat optimizer states (``exp_avg``, ``exp_avg_sq``: its ZeRO shard,
  or the whole buffer from data-parallel rank 0 without ZeRO). The safetensors metadata
  ``flat`` lists the flat buffer (name, start, end, local shape) and ``owned`` the flat
  ranges [start, end) the shards hold, concatenated in that order (one per segment of the
  buffer, :mod:`fugaku_sim.train.buffers`; version 1 wrote a single range).
- ``index.json``: format, step, model, train settings, layout, and the sha256 and size of
  every file.

A checkpoint is written into a hidden temporary directory and renamed into place when the
index is complete, so a crash leaves either the whole checkpoint or none. Loading checks every
sha256 first; it reassembles full tensors from the shards, so a run can resume under another
layout (every rank reads every file: fine at the sizes trained here, not at 13B).
Safetensors only: loading never executes code. The consolidated file's format is
:mod:`fugaku_sim.tensors.consolidated`'s.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from fugaku_sim.checksum import sha256_file
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object
from fugaku_sim.spec import ModelSpec
from fugaku_sim.tensors import TensorTable, tensor_table

FORMAT = "fugaku-sim-checkpoint"
CONSOLIDATED_FORMAT = "huggingface-{family}"  # gpt2 or llama: the names inside
VERSION = 2


def step_dir(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step_{step:07d}"


def rank_file(tp: int, pp: int, dp: int) -> str:
    return f"rank_tp{tp}_pp{pp}_dp{dp}.safetensors"




@dataclass
class RankState:
    """What one rank saves: its coordinates, flat layout, tensors and optimizer range."""

    tp: int
    pp: int
    dp: int
    flat: list[tuple[str, int, int, tuple[int, ...]]]
    padded: int
    params: dict[str, np.ndarray]  # local parts, tied copies left out (empty off dp rank 0)
    owned: list[tuple[int, int]]  # flat ranges of the shards below, in their order
    exp_avg: np.ndarray | None
    exp_avg_sq: np.ndarray | None
    param_shard: np.ndarray | None = None  # ZeRO-3: this rank's shard of the flat weights


def write_rank_file(directory: Path, state: RankState) -> tuple[str, dict[str, Any]] | None:
    """Write this rank's file into ``directory``; returns (name, {sha256, bytes}) or None."""
    from safetensors.numpy import save_file

    tensors = {f"param/{k}": np.ascontiguousarray(v) for k, v in state.params.items()}
    if state.exp_avg is not None and state.exp_avg_sq is not None:
        tensors["exp_avg"] = np.ascontiguousarray(state.exp_avg)
        tensors["exp_avg_sq"] = np.ascontiguousarray(state.exp_avg_sq)
    if state.param_shard is not None:
        tensors["param_shard"] = np.ascontiguousarray(state.param_shard)
    if not tensors:
        return None
    meta = {
        "coords": json.dumps([state.tp, state.pp, state.dp]),
        "flat": json.dumps([[n, s, e, list(sh)] for n, s, e, sh in state.flat]),
        "padded": str(state.padded),
        "owned": json.dumps([list(r) for r in state.owned]),
    }
    name = rank_file(state.tp, state.pp, state.dp)
    path = directory / name
    save_file(tensors, str(path), metadata=meta)
    return name, {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def write_index(directory: Path, header: dict[str, Any], files: dict[str, Any]) -> None:
    index = {"format": FORMAT, "version": VERSION, **header, "files": files}
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished temporary directory into place (replacing an older one)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


# --------------------------------------------------------------------------- finding, checking


def list_checkpoints(out: Path) -> list[Path]:
    """Checkpoint directories under ``out``, newest step first."""
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and d.name.startswith("step_")
            and d.name[5:].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[5:]), reverse=True)


def prune_checkpoints(out: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints under ``out``; return what was deleted."""
    import shutil

    old = list_checkpoints(out)[keep:]
    for directory in old:
        shutil.rmtree(directory, ignore_errors=True)
    return old


def read_index(directory: Path) -> dict[str, Any]:
    """The parsed ``index.json``.

    Raises:
        UserError: missing, unreadable or not a checkpoint index.
    """
    index = read_json_object(directory / "index.json", f"{directory}: checkpoint index")
    if index.get("format") != FORMAT:
        raise UserError(f"{directory}: not a fugaku-sim checkpoint")
    problem = _index_shape_problem(index)
    if problem:  # valid JSON of the wrong shape: refused here, not as a KeyError mid-load
        raise UserError(f"{directory}: corrupt checkpoint index ({problem})")
    return index


def _index_shape_problem(index: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a checkpoint index, in a few words (None: nothing)."""
    step, files = index.get("step"), index.get("files")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return "step is not a whole number >= 0"
    if not isinstance(index.get("model"), dict):
        return "model is not a mapping"
    if not isinstance(files, dict) or not files:
        return "files is not a mapping of file names"
    for name, info in files.items():
        if "/" in name or name.startswith(".") or not isinstance(info, dict):
            return f"files: {name[:40]!r} is not a file of the checkpoint"
        size, digest = info.get("bytes"), info.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or not isinstance(digest, str):
            return f"files: {name[:40]!r} lacks its bytes and sha256"
    return None


def verify(directory: Path) -> str | None:
    """None if every file matches its sha256 and size; else what is wrong, in a few words."""
    try:
        index = read_index(directory)
    except UserError as exc:
        return str(exc)
    for name, info in index.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != info.get("bytes") or sha256_file(path) != info.get("sha256"):
            return f"{name} fails its sha256 check"
    return None


def trained_model(model: ModelSpec) -> ModelSpec:
    """``model`` as this trainer trains and records it: an unset ``dropout`` (the family's
    rate, 0.1 for GPT-2, to the simulator) is 0, since the numpy trainer has no dropout (an
    explicit rate above 0 is refused by :func:`~fugaku_sim.train.run_plan.check_trainable`).
    The summary, the checkpoints and the release then say ``dropout: 0``, so a prediction
    made from them prices no dropout."""
    return model if model.dropout is not None else model.model_copy(update={"dropout": 0.0})


def _saved_model(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model record with the fields added since it was written at their
    defaults, as the trainer trains it (:func:`trained_model`); unchanged if it is not a
    valid model."""
    try:
        return trained_model(ModelSpec.model_validate(saved)).model_dump(mode="json")
    except ValidationError:
        return saved


def check_model(index: dict[str, Any], model: ModelSpec, directory: Path) -> None:
    """Raises UserError unless the checkpoint holds ``model``."""
    saved = _saved_model(index.get("model", {}))
    mine = trained_model(model).model_dump(mode="json")
    if saved != mine:
        differs = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        raise UserError(
            f"{directory}: checkpoint is of model {saved.get('name')!r}, not {model.name!r} "
            f"(differs in {', '.join(differs)}); use another --out or --resume never")


@dataclass
class Selection:
    """The checkpoint to resume from (None: start afresh) and what was skipped, and why."""

    directory: Path | None
    skipped: list[str] = field(default_factory=list)


def select_checkpoint(out: Path, model: ModelSpec) -> Selection:
    """The newest checkpoint under ``out`` whose files pass their checksums.

    Raises:
        UserError: the newest valid checkpoint is of another model, or checkpoints exist
            but none is intact.
    """
    found = list_checkpoints(out)
    skipped: list[str] = []
    for directory in found:
        problem = verify(directory)
        if problem is None:
            check_model(read_index(directory), model, directory)
            return Selection(directory, skipped)
        skipped.append(f"{directory.name}: {problem}")
    if found:
        raise UserError(f"{out}: no intact checkpoint ({'; '.join(skipped)}); "
                        "use --resume never to start afresh")
    return Selection(None)


# --------------------------------------------------------------------------- loading


@dataclass
class GlobalState:
    """Full tensors and optimizer states of a checkpoint, layout-independent."""

    step: int
    params: dict[str, np.ndarray]
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]


#: flat shards a rank file may hold, and the state each belongs to
FLAT_SHARDS = ("param_shard", "exp_avg", "exp_avg_sq")


@dataclass(frozen=True)
class RankFile:
    """What one rank file holds: its coordinates, flat layout, owned ranges and tensors."""

    tp: int
    pp: int
    flat: list[tuple[str, int, int, tuple[int, ...]]]
    padded: int
    owned: list[tuple[int, int]]
    tensors: dict[str, np.ndarray]


def owned_ranges(meta: dict[str, str]) -> list[tuple[int, int]]:
    """The flat ranges of a rank file's shards (a version 1 file's single range too)."""
    owned = json.loads(meta["owned"])
    if len(owned) == 2 and all(isinstance(x, int) for x in owned):
        return [(owned[0], owned[1])]
    return [(int(a), int(b)) for a, b in owned]


def _whole(value: Any) -> int:
    """``value`` if it is a whole number >= 0 (not a boolean); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number >= 0")
    return value


def _read_rank_file(path: Path) -> RankFile:
    """One rank file, its metadata checked against its tensors.

    Raises:
        UserError: unreadable, or metadata missing, malformed or disagreeing with the
            tensors (``<path>: corrupt rank file (...)``).
    """
    from fugaku_sim.tensors.consolidated import read_safetensors

    meta, tensors = read_safetensors(path, "checkpoint rank file")
    try:
        tp, pp, _ = (_whole(c) for c in json.loads(meta["coords"]))
        padded = _whole(json.loads(meta["padded"]))
        flat = [(str(n), _whole(s), _whole(e), tuple(_whole(d) for d in shape))
                for n, s, e, shape in json.loads(meta["flat"])]
        owned = [(_whole(a), _whole(b)) for a, b in owned_ranges(meta)]
    except KeyError as exc:
        raise UserError(f"{path}: corrupt rank file (no {exc} in its metadata)") from None
    except (ValueError, TypeError, RecursionError) as exc:  # json, unpacking, _whole
        raise UserError(f"{path}: corrupt rank file (metadata: {str(exc)[:120]})") from None
    bad_flat = [n for n, s, e, shape in flat if not s <= e <= padded or e - s != _size(shape)]
    bad_owned = [r for r in owned if not r[0] <= r[1] <= padded]
    held = sum(b - a for a, b in owned)
    bad_shard = [k for k in FLAT_SHARDS if k in tensors and tensors[k].shape != (held,)]
    if bad_flat or bad_owned or bad_shard:
        what = (f"flat entry {bad_flat[0]!r} outside the buffer" if bad_flat else
                f"owned range {bad_owned[0]} outside the buffer" if bad_owned else
                f"{bad_shard[0]} holds {tensors[bad_shard[0]].size} values, its ranges {held}")
        raise UserError(f"{path}: corrupt rank file ({what})")
    return RankFile(tp, pp, flat, padded, owned, tensors)


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _unshard(table: TensorTable, parts: dict[str, dict[int, np.ndarray]]
             ) -> dict[str, np.ndarray]:
    return {n: table.unshard(n, [p[t] for t in sorted(p)]) for n, p in parts.items()}


def _assemble(files: list[RankFile], table: TensorTable, wanted: tuple[str, ...]
              ) -> dict[str, dict[str, np.ndarray]]:
    """Full tensors of each state (``param`` and ``wanted``) from the rank files' parts.

    Raises:
        KeyError, ValueError, IndexError: parts that do not fit together.
    """
    parts: dict[str, dict[str, dict[int, np.ndarray]]] = {k: {} for k in ("param", *wanted)}
    flats: dict[tuple[int, int], dict[str, Any]] = {}
    for rank in files:
        for key, value in rank.tensors.items():
            if key.startswith("param/"):
                parts["param"].setdefault(key[6:], {})[rank.tp] = value
        for key in (k for k in wanted if k in rank.tensors):
            group = flats.setdefault((rank.tp, rank.pp), {"flat": rank.flat})
            full = group.setdefault(key, np.zeros(rank.padded, np.float32))
            at = 0
            for a, b in rank.owned:
                full[a:b] = rank.tensors[key][at:at + b - a]
                at += b - a
    for (tp, _), group in flats.items():
        for name, start, end, shape in group["flat"]:
            if table[name].tied_to is not None:  # its states are those of what it copies
                continue
            for key in (k for k in wanted if k in group):
                key_parts = parts["param" if key == "param_shard" else key]
                key_parts.setdefault(name, {})[tp] = group[key][start:end].reshape(shape)
    return {key: _unshard(table, p) for key, p in parts.items()}


def read_global_state(directory: Path, model: ModelSpec, optimizer: bool = True) -> GlobalState:
    """Reassemble the full tensors (and optimizer states) of a checkpoint of ``model``, each
    checked: every tensor of the model with its shape, finite, second moments >= 0.

    Raises:
        UserError: an unreadable index or rank file, parts that do not fit together, a
            tensor missing, misshapen or non-finite (one line naming the checkpoint).
    """
    from fugaku_sim.tensors.consolidated import check_params

    index = read_index(directory)
    table = tensor_table(model)
    wanted = FLAT_SHARDS if optimizer else FLAT_SHARDS[:1]
    files = [_read_rank_file(directory / name) for name in sorted(index["files"])]
    try:
        states = _assemble(files, table, wanted)
    except (KeyError, ValueError, IndexError) as exc:  # a part of another layout or model
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{directory}: corrupt checkpoint (its parts do not fit together: "
                        f"{type(exc).__name__}: {first})") from None
    check_params(model, states["param"], f"{directory}: weights")
    for key in ("exp_avg", "exp_avg_sq"):
        if states.get(key):
            check_params(model, states[key], f"{directory}: optimizer state {key}")
    negative = [n for n, v in states.get("exp_avg_sq", {}).items() if (v < 0).any()]
    if negative:  # Adam's second moment is a mean of squares
        raise UserError(f"{directory}: optimizer state exp_avg_sq: {negative[0]} holds "
                        "negative values")
    return GlobalState(int(index["step"]), states["param"], states.get("exp_avg", {}),
                       states.get("exp_avg_sq", {}))


def local_part(table: TensorTable, name: str, full: dict[str, np.ndarray], tp: int,
               tp_rank: int) -> np.ndarray:
    """This tensor rank's part of ``name`` (a tied copy reads what it copies)."""
    return table.shard(name, full[table.source(name)], tp, tp_rank)


# --------------------------------------------------------------------------- consolidated


def consolidate(directory: Path, path: Path, model: ModelSpec) -> None:
    """Write the checkpoint's full tensors as the consolidated Hugging Face file (format:
    :mod:`fugaku_sim.tensors.consolidated`; metadata ``format``, the spec and ``step``).

    Raises:
        UserError: the tensors do not make up ``model`` or hold non-finite values.
    """
    from fugaku_sim.tensors.consolidated import write_consolidated

    state = read_global_state(directory, model, optimizer=False)
    write_consolidated(path, model, state.params,
                       {"format": CONSOLIDATED_FORMAT.format(family=model.family),
                        "step": str(state.step)})
