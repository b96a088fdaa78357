"""Build ``results/release/<name>/`` and ``results/release/<name>.tar.gz``.

The directory is written under a temporary name, verified (:func:`verify_release`), then
renamed into place; the archive likewise. Contents: ``model.safetensors`` (Hugging Face
GPT-2 or Llama names, metadata ``format: pt`` and the ``model_spec``), ``config.json``
(``GPT2LMHeadModel`` or ``LlamaForCausalLM``), ``generation_config.json``,
``tokenizer.model`` with ``tokenizer.json`` and ``tokenizer_config.json``
(:mod:`fugaku_sim.release.tokenizer_files`), ``README.md``, ``eval.json``, ``SHA256SUMS``.
Paths of the build machine in the inputs are reduced to their last component
(:mod:`fugaku_sim.release.paths`).
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object
from fugaku_sim.release.paths import strip_paths_json
from fugaku_sim.release.tokenizer_files import TOKENIZER_FILES

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: a licence id as the Hub's model card takes it (apache-2.0, mit, cc-by-4.0, other, ...)
LICENSE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
CONTENT_FILES = ("model.safetensors", "config.json", "generation_config.json",
                 *TOKENIZER_FILES, "README.md", "eval.json")


@dataclass(frozen=True)
class ReleaseInputs:
    """Paths a release is built from; optional ones are None."""

    checkpoint: Path
    data_dir: Path
    eval_json: Path
    out_dir: Path
    train_dir: Path | None = None
    prediction: Path | None = None
    compare: Path | None = None
    name: str | None = None
    license: str = "apache-2.0"


def _optional_json(path: Path | None, what: str, notes: list[str]) -> dict[str, Any] | None:
    """The JSON object in ``path``; None (and a note) when no such input was given."""
    if path is None or not path.is_file():
        notes.append(f"{what} not provided" + (f" ({path} absent)" if path else ""))
        return None
    return strip_paths_json(read_json_object(path, f"{path}: {what}"))


def check_eval(ev: Any, digest: str, path: Path) -> dict[str, Any]:
    """The eval.json object, checked to describe these weights.

    Raises:
        UserError: not an eval.json of this package, or computed on other weights.
    """
    from fugaku_sim.evaluate.runner import SCHEMA

    if not isinstance(ev, dict) or ev.get("schema") != SCHEMA:
        raise UserError(f"{path}: not an eval.json written by `fugaku-sim evaluate`")
    if eval_weights_digest(ev) != digest:
        raise UserError(f"{path}: was computed on other weights than the checkpoint; rerun "
                        "`fugaku-sim evaluate` on it")
    return ev


def eval_weights_digest(ev: dict[str, Any]) -> Any:
    """The ``model.weights_sha256`` of an eval.json object (None when absent or misshapen)."""
    model = ev.get("model")
    return model.get("weights_sha256") if isinstance(model, dict) else None


def _archive(directory: Path, tarball: Path, name: str) -> None:
    """A gzip tar of ``directory`` (entries under ``name``), sorted, fixed owner and mtime."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(directory, arcname=name, recursive=False, filter=clean)
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=f"{name}/{path.name}", filter=clean)


def _write_files(tmp: Path, inputs: ReleaseInputs, spec: Any, params: Any, tokenizer: Any,
                 card: Any, eval_bytes: bytes) -> list[str]:
    """Write every content file and SHA256SUMS into ``tmp``; return notes."""
    from fugaku_sim.release.card import render_card
    from fugaku_sim.release.checksums import SUMS_NAME, write_checksums
    from fugaku_sim.release.hf_config import generation_config, model_config
    from fugaku_sim.release.tokenizer_files import write_tokenizer_files
    from fugaku_sim.tensors.consolidated import write_consolidated

    write_consolidated(tmp / "model.safetensors", spec, params, {"format": "pt"})
    cfg = model_config(spec, tokenizer.bos_id, tokenizer.eod_id)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    gen = generation_config(tokenizer.bos_id, tokenizer.eod_id)
    (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n",
                                                encoding="utf-8")
    notes = write_tokenizer_files(tmp, tokenizer.path, spec.seq_len)
    (tmp / "eval.json").write_bytes(eval_bytes)
    (tmp / "README.md").write_text(render_card(card, [*CONTENT_FILES, SUMS_NAME]),
                                   encoding="utf-8")
    write_checksums(tmp, list(CONTENT_FILES))
    for path in tmp.iterdir():  # temporary files are created private; a release is public
        path.chmod(0o644)
    return notes


def build_release(inputs: ReleaseInputs) -> tuple[Path, Path, list[str]]:
    """Write the release directory and its archive; return both paths and notes about
    inputs that were not provided.

    Raises:
        UserError: a bad name or licence id, an unreadable or mismatched checkpoint, a missing data
            directory or eval.json, an eval.json of other weights, a tokenizer that does not
            fit the model.
    """
    from fugaku_sim.data.config import DOMAINS
    from fugaku_sim.evaluate.heldout import DataDir
    from fugaku_sim.evaluate.runner import weights_digest
    from fugaku_sim.evaluate.tokenizer import Tokenizer
    from fugaku_sim.io import atomic_paths, check_output_path
    from fugaku_sim.release.card import CardInputs
    from fugaku_sim.release.tokenizer_files import heldout_notes
    from fugaku_sim.release.verify import verify_release
    from fugaku_sim.tensors import tensor_table
    from fugaku_sim.tensors.consolidated import read_consolidated

    if not LICENSE_PATTERN.match(inputs.license):
        raise UserError(f"--license {inputs.license[:40]!r}: give a licence id such as "
                        "apache-2.0, mit or other (the model card's license field)")
    spec, params = read_consolidated(inputs.checkpoint)
    name = inputs.name or spec.name
    if not NAME_PATTERN.match(name):
        raise UserError(f"release name {name!r}: use letters, digits, '.', '_' and '-'")
    check_output_path(inputs.out_dir / name, f"--out {inputs.out_dir}: {name}", folder=True)
    check_output_path(inputs.out_dir / f"{name}.tar.gz", f"--out {inputs.out_dir}: {name}.tar.gz")
    data = DataDir.open(inputs.data_dir)
    tokenizer = Tokenizer(data.tokenizer_path, eod_id=data.eod_id)
    if tokenizer.vocab_size > spec.vocab:
        raise UserError(f"{tokenizer.path}: {tokenizer.vocab_size} tokens do not fit the "
                        f"model's vocabulary of {spec.vocab}")
    ev = strip_paths_json(check_eval(read_json_object(
        inputs.eval_json, f"--eval {inputs.eval_json}", "run `fugaku-sim evaluate` first"),
        weights_digest(params), inputs.eval_json))
    eval_bytes = (json.dumps(ev, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    notes: list[str] = []
    summary = _optional_json(inputs.train_dir / "summary.json" if inputs.train_dir else None,
                             "training summary", notes)
    card = CardInputs(
        name=name, spec=spec, parameters=tensor_table(spec).parameters(),
        license=inputs.license, eval_result=ev, manifest=strip_paths_json(data.manifest()),
        summary=summary,
        prediction=_optional_json(inputs.prediction, "simulator prediction", notes),
        compare=_optional_json(inputs.compare, "predicted-vs-measured comparison", notes),
        tokenizer_vocab=tokenizer.vocab_size, eod_id=tokenizer.eod_id)
    if card.manifest is None:
        notes.append(f"{data.path / 'manifest.json'} absent or unreadable: no mixture table")
    heldout = {d: data.heldout_texts(d) for d in DOMAINS}  # read before anything is written
    final, tarball = inputs.out_dir / name, inputs.out_dir / f"{name}.tar.gz"
    with atomic_paths([final, tarball]) as (tmp, tar_tmp):  # the folder and tarball, or neither
        tmp.mkdir()
        notes += _write_files(tmp, inputs, spec, params, tokenizer, card, eval_bytes)
        verify_release(tmp)
        notes += heldout_notes(tmp, heldout)
        _archive(tmp, tar_tmp, name)
    return final, tarball, notes
