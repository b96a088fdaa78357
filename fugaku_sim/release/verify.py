"""``fugaku-sim release verify DIR``: is this release intact and loadable?

Checks, in order: the directory and every required file exist, none a symbolic link; every line of SHA256SUMS
matches its file and no file is unlisted; no pickle-format file is present; ``config.json``
is a GPT-2 or Llama config this package can run; ``model.safetensors`` loads with safetensors (never
pickle) and holds exactly the tensors and shapes ``config.json`` implies, finite; the
tokenizer loads and fits the vocabulary, and ``tokenizer.json``/``tokenizer_config.json``
are its conversion (with sentencepiece's ids on probe texts when the ``tokenizers`` library
is installed); ``eval.json`` describes these weights; README.md starts with YAML front
matter that has a ``model-index``; ``generation_config.json`` carries config.json's token ids
and sampling settings transformers takes; nothing in it is a link, pipe, socket or device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object, read_text
from fugaku_sim.release.build import CONTENT_FILES, eval_weights_digest
from fugaku_sim.release.checksums import SUMS_NAME

REQUIRED_FILES = (*CONTENT_FILES, SUMS_NAME)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".npz")


def check_card(path: Path) -> dict[str, Any]:
    """The model card's YAML front matter.

    Raises:
        UserError: no front matter, invalid YAML, or no ``model-index``.
    """
    from fugaku_sim.spec.load import parse_yaml

    text = read_text(path, str(path), "rebuild the release with `fugaku-sim release build`")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise UserError(f"{path}: no YAML front matter (--- ... ---) at the top")
    meta = parse_yaml(text[4:text.index("\n---\n", 4)], f"{path}: front matter")
    if not isinstance(meta, dict) or not isinstance(meta.get("model-index"), list):
        raise UserError(f"{path}: front matter has no model-index")
    return meta


def check_no_links(root: Path) -> None:
    """Refuse anything in a release but files and folders: a symbolic link to a file outside
    it would pass every checksum here yet be a dangling absolute link in the tarball or an
    upload; a pipe, socket or device is no file to checksum (it would go into the tarball as
    itself).

    Raises:
        UserError: names the first link (and where it points) or special file.
    """
    for folder, dirs, files in os.walk(root):  # links to folders are listed, not followed
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                raise UserError(f"{path}: a symbolic link (to {os.readlink(path)}); a release "
                                "holds its files themselves: copy the file in and rebuild")
            if not (path.is_file() or path.is_dir()):
                raise UserError(f"{path}: a pipe, socket or device, not a file of a release; "
                                "remove it")


def verify_release(directory: str | Path) -> dict[str, Any]:
    """Verify a release directory; return {name, files, parameters}.

    Raises:
        UserError: the first problem found, in one line naming the file.
    """
    from fugaku_sim.evaluate.runner import weights_digest
    from fugaku_sim.evaluate.tokenizer import Tokenizer
    from fugaku_sim.release.checksums import verify_checksums
    from fugaku_sim.release.hf_config import check_generation_config
    from fugaku_sim.release.load import release_spec
    from fugaku_sim.release.tokenizer_files import check_tokenizer_files
    from fugaku_sim.tensors.consolidated import check_params, read_safetensors

    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{root}: release directory not found")
    check_no_links(root)
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            raise UserError(f"{root / name}: required release file missing")
    sums = verify_checksums(root)
    unlisted = [n for n in REQUIRED_FILES[:-1] if n not in sums]
    if unlisted:
        raise UserError(f"{root / 'SHA256SUMS'}: does not list {unlisted[0]}")
    risky = [n for n in sums if n.lower().endswith(PICKLE_SUFFIXES)]
    if risky:
        raise UserError(f"{root / risky[0]}: pickle-capable format; releases hold safetensors "
                        "only")
    spec = release_spec(root)
    _, tensors = read_safetensors(root / "model.safetensors")
    check_params(spec, tensors, str(root / "model.safetensors"))
    tokenizer = Tokenizer(root / "tokenizer.model")
    if tokenizer.vocab_size > spec.vocab:
        raise UserError(f"{root / 'tokenizer.model'}: {tokenizer.vocab_size} pieces exceed "
                        f"config.json's vocab_size {spec.vocab}")
    check_tokenizer_files(root, spec.seq_len)
    hint = "rebuild the release with `fugaku-sim release build`"
    check_generation_config(
        read_json_object(root / "generation_config.json", str(root / "generation_config.json"),
                         hint),
        read_json_object(root / "config.json", str(root / "config.json"), hint),
        str(root / "generation_config.json"))
    ev = read_json_object(root / "eval.json", str(root / "eval.json"),
                          "rebuild the release with `fugaku-sim release build`")
    if eval_weights_digest(ev) != weights_digest(tensors):
        raise UserError(f"{root / 'eval.json'}: describes other weights than model.safetensors")
    check_card(root / "README.md")
    return {"name": root.name, "files": len(sums),
            "parameters": int(sum(v.size for v in tensors.values()))}
