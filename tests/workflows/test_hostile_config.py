"""Hostile and careless workflow configs: each refused before any job runs, in one line naming
the key or file (the contract of tests/commands/test_hostile.py, for ``--configfile``).

The table's cases go through what Snakemake and the Snakefile do with a config file: Snakemake's
own loader merges ``default.yaml``, ``ci.yaml`` and the case's file
(``snakemake.common.configfile.load_configfile`` and ``snakemake.utils.update_config``), then
:func:`fugaku_sim.workflow.config.check_workflow_config`, the one call workflows/common.smk
makes, checks it. Before this suite several of them passed and failed only when their job
ran, hours into a build (an unknown ``plan.model``, a 300-character run name that no release
file can be named after, ranks beyond the cluster, an empty MPI launcher, a recomputed stage
no layout has).

A few cases run the real ``snakemake`` under a memory limit and a time limit: YAML alias
bombs, which must end in one line, quickly, without exhausting memory. One bomb is out of
reach: a bomb of *mappings* given with ``--configfile`` is expanded by Snakemake itself
before the Snakefile runs (``snakemake/settings/types.py``, ``ConfigSettings.__post_init__``
-> ``_get_overwrite_config`` -> ``snakemake/utils.py`` ``update_config``, which copies every
mapping it merges); see the module docstring of ``fugaku_sim.workflow.config``.
"""

from __future__ import annotations

import copy
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CONFIGS, MAIN, NO_SLURM, REPO, SNAKEMAKE, workflow_env

from fugaku_sim.errors import UserError

DEFAULT, CI = CONFIGS / "default.yaml", CONFIGS / "ci.yaml"


def list_bomb() -> str:
    """A "billion laughs" of lists: 10^9 values once its aliases are followed."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def mapping_bomb(key: str = "z") -> str:
    """A "billion laughs" of mappings (what Snakemake's config merge copies in full)."""
    lines = [f"{key}0: &{key}0 {{{', '.join(f'k{j}: x' for j in range(10))}}}"]
    lines += [f"{key}{i}: &{key}{i} {{{', '.join(f'k{j}: *{key}{i - 1}' for j in range(10))}}}"
              for i in range(1, 9)]
    return "\n".join(lines) + "\n"


MODEL = "model: {name: m, layers: 2, hidden: 16, heads: 2, seq_len: 8, vocab: 2048}\n"
#: files a case's config may name, by the placeholder that stands for their path
FILES = {
    "@bomb_model": ("bomb_model.yaml", (MODEL + mapping_bomb()).encode()),
    "@dup_model": ("dup_model.yaml", MODEL.replace("layers: 2", "layers: 2, layers: 4").encode()),
    "@latin1_model": ("latin1_model.yaml", b"model: {name: caf\xe9}\n"),
    "@empty_runs": ("runs.yaml", b"runs: []\n"),
    "@folder": ("folder", b""),
}

#: case -> (the config file's text, words of the one line)
CASES: dict[str, tuple[str, str]] = {
    # names and references that a job would meet only when it runs
    "a run name too long for a file name": (f"run_name: {'r' * 300}\n", "is too long"),
    "a run name YAML reads as a date": ("run_name: 2024-01-01\n", "is not of type 'string'"),
    "more ranks than the cluster runs": ("train: {ranks: 1000000, cluster: fugaku}\n",
                                         "train.ranks: 1000000 ranks take 1000000 nodes"),
    "a model file that does not exist": ("train: {model: /nonexistent/m.yaml}\n",
                                         "train.model: /nonexistent/m.yaml: no such file"),
    "a model file holding an alias bomb": ("train: {model: @bomb_model}\n",
                                           "expands to more than 100000 values"),
    "a model file with a duplicate key": ("train: {model: @dup_model}\n",
                                          "duplicate key 'layers'"),
    "a model file in Latin-1": ("train: {model: @latin1_model}\n", "not UTF-8 text (byte 17)"),
    "a folder for a cluster": ("train: {cluster: @folder}\n", "train.cluster: "),
    "/dev/zero for a cluster": ("train: {cluster: /dev/zero}\n",
                                "train.cluster: /dev/zero: not a regular file"),
    "an unknown stack": ("train: {stack: fastest}\n", "train.stack: no stack 'fastest'"),
    "an unknown model for the plan": ("plan: {model: gpt-5}\n",
                                      "plan.model: no model preset 'gpt-5'"),
    "an unknown cluster for the plan": ("plan: {cluster: frontier}\n",
                                        "plan.cluster: no cluster preset 'frontier'"),
    "a plan larger than its cluster": ("plan: {nodes: 100000}\n",
                                       "plan.nodes: 100000 nodes, but fugaku runs jobs of at most"),
    "a plan batch beyond any model": ("plan: {global_batch: 1000000000000}\n",
                                      "plan.global_batch: 1000000000000 is greater than"),
    "a run set file with no runs": ("compare: {runs: @empty_runs}\n",
                                    "compare.runs: "),
    "a NaN what-if factor": ("plan: {whatif_scale: {gemm_efficiency_scale: .nan}}\n",
                             "Input should be a finite number"),
    "infinite tokens for the plan": ("plan: {tokens: .inf}\n", "plan.tokens: "),
    "a word for a node count": ("plan: {nodes: many}\n", "plan.nodes: 'many' is not of type"),
    "an empty MPI launcher": ("train: {mpi_launcher: ''}\n", "train.mpi_launcher: "),
    # training settings
    "a boolean for the global batch": ("train: {settings: {global_batch: true}}\n",
                                       "train.settings.global_batch: True"),
    "both steps and tokens": ("train: {settings: {steps: 10, tokens: 1.0e+6}}\n",
                              "give steps (10) or tokens (1e+06), not both"),
    "a recomputed stage no layout has": (
        "train: {settings: {recompute: stages, recompute_stages: [99]}}\n",
        "train.settings.recompute_stages: stage 99 exists in no layout of 2 layers"),
    "ZeRO-3 with a pipeline": (
        "train: {layout: {tp: 1, pp: 2, dp: 1}, settings: {zero_stage: 3}}\n",
        "train.settings.zero_stage: stage 3"),
    "a layout named by a word other than auto": ("train: {layout: fastest}\n",
                                                 "train.layout: 'auto' was expected"),
    "sequence parallelism without tensor parallelism": (
        "train: {layout: {tp: 1, pp: 1, dp: 2, sequence_parallel: true}}\n",
        "train.layout.sequence_parallel: needs layout.tp > 1"),
    "a fraction of a step between evaluations": ("train: {eval_every: 1.5}\n",
                                                 "train.eval_every: 1.5 is not of type"),
    # the data stage
    "no sources": ("data: {sources: []}\n", "data.sources: [] should be non-empty"),
    "two sources of one name": (
        "data: {sources: [{kind: python-stdlib, name: a}, {kind: python-stdlib, name: a}]}\n",
        "source names must be unique; repeated: a"),
    "a files source without paths": (
        "data: {sources: [{kind: files, name: f, domain: en, paths: []}]}\n", "data.sources.0"),
    "a download without its sha256": (
        "data: {sources: [{kind: url, name: u, domain: en, url: 'http://x/y.txt'}]}\n",
        "data.sources.0"),
    "splits summing above one": ("data: {splits: {train: 0.9, valid: 0.2, test: 0.05}}\n",
                                 "train + valid + test must be 1, got 1.15"),
    "a tokenizer of ten pieces": ("data: {tokenizer: {vocab_size: 10}}\n",
                                  "data.tokenizer.vocab_size: 10 is less than the minimum"),
    "a thousand data workers": ("data: {workers: 1000}\n", "data.workers: 1000 is greater"),
    # the file's shape
    "a list for the train section": ("train: [1, 2]\n", "train: [1, 2] is not of type 'object'"),
    "a null data section": ("data: null\n", "data: None is not of type 'object'"),
    "a config nested 40 deep": ("train: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
                                "nested deeper than 32 levels"),
    "a config that is an alias bomb of lists": (list_bomb(), "expands to more than 100000"),
    "a config of 5 MiB": ("run_name: a\n# " + "x" * (5 * 2**20) + "\n", "larger than 4 MiB"),
    "a YAML tag that names Python code": ("run_name: !!python/name:os.system\n",
                                          "could not determine a constructor for the tag"),
}


def snakemake_config(files: list[Path]) -> dict:
    """The config Snakemake builds from ``files``: its loader, merged in order."""
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    config: dict = {}
    for path in files:
        update_config(config, copy.deepcopy(load_configfile(str(path))))
    return config


def write_case(tmp_path: Path, text: str) -> Path:
    for placeholder, (name, data) in FILES.items():
        if placeholder in text:
            path = tmp_path / name
            if name == "folder":
                path.mkdir()
            else:
                path.write_bytes(data)
            text = text.replace(placeholder, str(path))
    case = tmp_path / "case.yaml"
    case.write_text(text, encoding="utf-8")
    return case


@pytest.mark.hostile
@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_config_is_refused_before_any_job(name: str, tmp_path: Path) -> None:
    from fugaku_sim.workflow.config import check_workflow_config

    text, words = CASES[name]
    case = write_case(tmp_path, text)
    files = [DEFAULT, CI, case]
    with pytest.raises(UserError) as info:
        check_workflow_config(snakemake_config(files), [str(f) for f in files])
    message = str(info.value)
    assert "\n" not in message and words in message, message


def test_the_shipped_configs_pass() -> None:
    """The baseline of the table: each shipped config as Snakemake merges it."""
    from fugaku_sim.workflow.config import check_workflow_config

    for extra in ([], [CI], [CONFIGS / "llama.yaml"]):
        files = [DEFAULT, *extra]
        check_workflow_config(snakemake_config(files), [str(f) for f in files])


# --------------------------------------------------------------------------- real snakemake

#: the limits a bomb case runs under: a bomb expanded in full needs tens of GiB and minutes
MEMORY_LIMIT_BYTES = 3 * 2**30
TIME_LIMIT_S = 60


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def run_bounded(workdir: Path, snakefile: Path, *args: str) -> tuple[int, str, float]:
    """``snakemake -n`` under :data:`MEMORY_LIMIT_BYTES` of address space and
    :data:`TIME_LIMIT_S`, with no Slurm (:data:`conftest.NO_SLURM`); returns (status,
    stderr, seconds)."""
    command = ["timeout", "-k", "5", str(TIME_LIMIT_S), str(SNAKEMAKE), "-s", str(snakefile),
               "-d", str(workdir), "-n", "--cores", "1", "--nocolor", *args]
    start = time.monotonic()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                          env=workflow_env(NO_SLURM),
                          preexec_fn=_limit_memory)
    return done.returncode, done.stderr, time.monotonic() - start


def _assert_one_config_line(status: int, err: str, seconds: float, words: str) -> None:
    # Snakemake's own note that the command line extends default.yaml may come first
    lines = [line for line in err.splitlines()
             if line.strip() and not (line.startswith("Config file ") and "is extended" in line)]
    assert status == 1, (status, err[-3000:])
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("fugaku-sim workflow: config error: ") and words in lines[0], lines
    assert seconds < TIME_LIMIT_S


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.mark.hostile
def test_a_mapping_bomb_in_the_workflows_own_config_is_one_line(tmp_path: Path,
                                                                 workdir: Path) -> None:
    """The ``configfile:`` directive's file (a copy of the workflow whose default.yaml is a
    bomb of mappings): read through the strict loader before Snakemake merges it."""
    copy_dir = tmp_path / "workflow"
    copy_dir.mkdir()
    shutil.copy(MAIN, copy_dir / "Snakefile")
    shutil.copytree(REPO / "workflows", copy_dir / "workflows")
    (copy_dir / "workflows/config/default.yaml").write_text(mapping_bomb(), encoding="utf-8")
    status, err, seconds = run_bounded(workdir, copy_dir / "Snakefile")
    _assert_one_config_line(status, err, seconds, "default.yaml: YAML syntax error: expands to "
                            "more than 100000 values")


@pytest.mark.hostile
@pytest.mark.parametrize(("text", "words"), [
    (list_bomb(), "case.yaml: YAML syntax error: expands to more than 100000 values"),
    ("train: {model: @bomb_model}\n", "train.model: "),
    ("plan: {model: gpt-5}\n", "plan.model: no model preset 'gpt-5'"),
], ids=["a list bomb given with --configfile", "a bomb in the model file the config names",
        "an unknown plan model"])
def test_real_snakemake_stops_in_one_line(tmp_path: Path, workdir: Path, text: str,
                                          words: str) -> None:
    case = write_case(tmp_path, text)
    status, err, seconds = run_bounded(workdir, MAIN, "--configfile", str(CI), str(case))
    _assert_one_config_line(status, err, seconds, words)
    assert os.listdir(workdir) == [".snakemake"] or os.listdir(workdir) == []
