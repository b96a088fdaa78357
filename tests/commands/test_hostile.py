"""Hostile and careless input through the real command line, one case per class of mistake.

Every case must end the way the project promises: exit status 2, exactly one line on stderr
(``fugaku-sim: error: ...``) naming what to fix, no traceback, and nothing written (the
working folder holds only what the case itself prepared). The classes: non-finite and
out-of-range numbers, booleans for numbers, duplicate YAML keys, YAML that is too deep, too
large or not text, paths of the wrong kind, options out of range, outputs that cannot be
written, and cross-field rules of the specs.

This module is one table of the hostile-input suite. The others: tests/spec/test_bad_input.py
(layouts and specs through ``check``), tests/workflows/test_hostile_config.py (workflow
configs; real ``snakemake`` runs under memory and time limits for alias bombs),
tests/train/test_hostile_files.py (every kind of file the trainer reads, spoiled, under
``mpiexec -n 2``: exit 2 on every rank within 30 s), tests/data/test_hostile_data.py (source
files and each data stage's input), tests/evaluate/test_hostile_eval.py and
tests/release/test_hostile_release.py, plus single cases in the modules of what they test;
tests/spec/test_fuzz.py is the seeded fuzzer (600 mutants of every shipped YAML).

How the cases are counted: every hand-written case is a test item marked ``hostile`` that
feeds one bad input (a parametrized test is one case per parameter; a test that tries
several inputs in one item counts once), so
``pytest -m hostile --collect-only -q | grep -c ::`` is the count and
``pytest -m "hostile or fuzz"`` runs the whole suite. Each case must end within 10 s of CPU
time, its own and its child processes', and 60 s of wall time (tests/conftest.py fails a
``hostile`` item that takes longer, and lists the ten slowest with the load).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

MODEL = "model: {name: m, layers: 2, hidden: 16, heads: 2, seq_len: 16, vocab: 64}\n"
TINY = ["--cluster", "fugaku", "--model", "gpt2-small", "--tp", "1", "--pp", "1", "--dp", "8",
        "--global-batch", "8"]
#: a file the case writes (name, bytes) and the argv that uses it
Prepared = tuple[dict[str, bytes], list[str]]


def _model(text: str, *argv: str) -> Prepared:
    return {"m.yaml": text.encode()}, ["check", "--cluster", "fugaku", "--model", "m.yaml",
                                       "--global-batch", "8", *argv]


def _cluster(edit: Callable[[str], str]) -> Prepared:
    from fugaku_sim.spec.load import REPO_CLUSTER_DIR

    text = edit((REPO_CLUSTER_DIR / "fugaku.yaml").read_text(encoding="utf-8"))
    return {"c.yaml": text.encode()}, ["check", "--cluster", "c.yaml", "--model", "gpt2-small",
                                       "--tp", "1", "--pp", "1", "--dp", "8",
                                       "--global-batch", "8"]


def _train_config(text: str) -> Prepared:
    return {"t.yaml": text.encode()}, ["check", *TINY, "--train-config", "t.yaml"]


def _argv(*argv: str) -> Prepared:
    return {}, list(argv)


def _bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


CASES: dict[str, tuple[Prepared, str]] = {
    # numbers: a boolean, a non-finite float, a value beyond every published machine
    "layers given as a boolean": (_model(MODEL.replace("layers: 2", "layers: true")),
                                  "model.layers: expected a number or text, not the boolean"),
    "layers beyond any published model": (_model(MODEL.replace("layers: 2", "layers: 100000")),
                                          "model.layers: Input should be less than or equal"),
    "hidden as a float": (_model(MODEL.replace("hidden: 16", "hidden: 1.0e+30")),
                          "model.hidden"),
    "a number of 5000 digits": (_model(MODEL.replace("vocab: 64", "vocab: " + "9" * 5000)),
                                "m.yaml"),
    "a bandwidth of 10^21 GB/s": (
        _cluster(lambda t: t.replace("link_bw_GBps: ", "link_bw_GBps: 1180591620717411303424 #")),
        "c.yaml: interconnect.torus.link_bw_GBps: a number beyond 1e+18"),
    "a learning rate of 1e30": (_argv("check", *TINY, "--lr", "1e30"),
                                "train.lr: a number beyond 1e+18"),
    "an impossible date": (_model(MODEL.replace("name: m", "name: 2024-13-45")),
                           "m.yaml: YAML syntax error: a value that cannot be read (month must"),
    "infinite learning rate in a file": (_train_config("lr: .inf\n"),
                                         "train.lr: Input should be a finite number"),
    "NaN weight decay in a file": (_train_config("weight_decay: .nan\n"),
                                   "train.weight_decay: Input should be a finite number"),
    "boolean micro-batch in a file": (_train_config("micro_batch: true\n"),
                                      "train.micro_batch: expected a number"),
    "infinite learning rate": (_argv("check", *TINY, "--lr", "inf"), "train.lr"),
    "NaN weight decay": (_argv("check", *TINY, "--weight-decay", "nan"), "train.weight_decay"),
    "infinite bucket": (_argv("check", *TINY, "--grad-bucket-mb", "inf"),
                        "train.grad_bucket_MB"),
    "bucket of an exabyte": (_argv("check", *TINY, "--grad-bucket-mb", "1e12"),
                             "train.grad_bucket_MB: Input should be less than or equal"),
    "infinite tokens": (_argv("check", *TINY, "--tokens", "inf"), "train.tokens"),
    "NaN tokens": (_argv("check", *TINY, "--tokens", "nan"), "train.tokens"),
    "global batch of a billion": (_argv("check", *TINY, "--global-batch", "1000000000"),
                                  "train.global_batch: Input should be less than or equal"),
    "stage range of a hundred billion": (
        _argv("check", *TINY, "--recompute-stages", "0-99999999999"),
        "argument --recompute-stages: '0-99999999999': stages run from 0 up to"),
    "stage range upside down": (_argv("check", *TINY, "--recompute-stages", "5-2"),
                                "argument --recompute-stages"),
    # the cluster: memory, sizes
    "reserved memory above total": (
        _cluster(lambda t: t.replace("mem_reserved_GiB: ", "mem_reserved_GiB: 100 #", 1)),
        "node.mem_reserved_GiB: 100 leaves nothing of mem_GiB"),
    "NaN link bandwidth": (
        _cluster(lambda t: t.replace("link_bw_GBps: ", "link_bw_GBps: .nan #")),
        "interconnect.torus.link_bw_GBps: Input should be a finite number"),
    "boolean core count": (_cluster(lambda t: t.replace("cores: ", "cores: true #", 1)),
                           "node.cores: expected a number"),
    "duplicate key in a cluster": (_cluster(lambda t: t.replace("node:\n", "node:\n  cores: 1\n",
                                                                1)),
                                   "duplicate key 'cores'"),
    # YAML: duplicates, nesting, bombs, bytes that are not text, wrong kinds of file
    "duplicate key in a model": (_model(MODEL.replace("layers: 2,", "layers: 2, layers: 4,")),
                                 "m.yaml: YAML syntax error: duplicate key 'layers' at line 1"),
    "duplicate top-level key": (_model(MODEL + "model: {}\n"), "duplicate key 'model' at line 2"),
    "YAML nested 5000 deep": (_model("model: " + "[" * 5000 + "]" * 5000 + "\n"),
                              "nested deeper than 32 levels"),
    "YAML alias bomb": (_model(_bomb()), "expands to more than 100000 values"),
    "YAML alias that holds itself": (_model("model: &a [*a]\n"), "m.yaml"),
    "two YAML documents": (_model(MODEL + "---\n" + MODEL),
                           "expected a single document in the stream, but found another"),
    "not UTF-8": (({"m.yaml": b"model: {name: \xff\xfe}\n"},
                   ["check", "--cluster", "fugaku", "--model", "m.yaml"]),
                  "m.yaml: not UTF-8 text (byte 14)"),
    "a control character in YAML": (_model(MODEL.replace("name: m", "name: m\x0c")),
                                    "m.yaml: YAML syntax error: special characters are not "
                                    "allowed (character #x000c at position 15)"),
    "an empty spec file": (({"m.yaml": b""}, ["check", "--cluster", "fugaku", "--model", "m.yaml"]),
                           "m.yaml: expected a mapping"),
    "a list for a spec": (({"m.yaml": b"- 1\n"},
                           ["check", "--cluster", "fugaku", "--model", "m.yaml"]),
                          "m.yaml: expected a mapping"),
    "/dev/zero as a model": (_argv("check", "--cluster", "fugaku", "--model", "/dev/zero"),
                             "/dev/zero: not a regular file"),
    "/dev/zero as a cluster": (_argv("check", "--cluster", "/dev/zero", "--model", "gpt2-small"),
                               "/dev/zero: not a regular file"),
    "a folder as a model": (_argv("check", "--cluster", "fugaku", "--model", "./"),
                            "is a directory"),
    "a preset name of 300 characters": (
        _argv("check", "--cluster", "fugaku", "--model", "g" * 300), "no model preset"),
    "a NUL byte in a name": (_argv("check", "--cluster", "fugaku", "--model", "gpt\0x"),
                             "no model preset"),
    # options out of range
    "plan --top 0": (_argv("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes", "8",
                           "--global-batch", "8", "--top", "0"), "argument --top: must be at least 1"),
    "plan --top -3": (_argv("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes",
                            "8", "--global-batch", "8", "--top", "-3"), "argument --top"),
    "plan --nodes 0": (_argv("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes",
                             "0", "--global-batch", "8"), "argument --nodes"),
    "a torus shape of seven axes": (_argv("check", *TINY, "--job-shape", "1x1x1x1x1x1x8"),
                                    "at most 6 axes"),
    "sweep of NaN": (_argv("sweep", *TINY, "--vary", "global_batch", "--values", "nan",
                           "--out", "sw"), "argument --values: must be a finite number"),
    "sweep of a fraction of a node": (_argv("sweep", *TINY, "--vary", "nodes", "--values", "1.5",
                                            "--out", "sw"), "nodes: 1.5 is not a whole number"),
    "campaign of a billion seeds": (_argv("campaign", *TINY, "--seeds", "1000000000"),
                                    "argument --seeds: must be at most"),
    "campaign of infinite hours": (_argv("campaign", *TINY, "--elapse-h", "inf"),
                                   "argument --elapse-h: must be a finite number"),
    "evaluate with one choice": (_argv("evaluate", "--checkpoint", "x", "--choices", "1"),
                                 "argument --choices: must be at least 2"),
    "evaluate at NaN temperature": (_argv("evaluate", "--checkpoint", "x", "--temperature", "nan"),
                                    "argument --temperature: must be a finite number"),
    "calibrate with an infinite array": (_argv("calibrate", "--array-MB", "inf"),
                                         "argument --array-MB: must be a finite number"),
    "calibrate with no ranks": (_argv("calibrate", "--ranks", "0"), "argument --ranks"),
    "data with no workers": (_argv("data", "all", "--workers", "0"), "argument --workers"),
    "runs at a NaN clock": (_argv("runs", "megatron", "x.log", "--cluster", "fugaku",
                                  "--processes-per-node", "8", "--clock-ghz", "nan"),
                            "argument --clock-ghz: must be a finite number"),
    "validate with a negative warm-up": (_argv("validate", "--warmup", "-1"),
                                         "argument --warmup: must be at least 0"),
    "validate with no passes": (_argv("validate", "--repeats", "0"),
                                "argument --repeats"),
    "data config with a NaN share": (
        ({"d.yaml": b"mixture: {ja: .nan, en: 0.5, code: 0.25, maths: 0.25}\n"},
         ["data", "all", "--config", "d.yaml", "--out", "data"]),
        "d.yaml: data.mixture.ja: Input should be a finite number"),
    "data config with a duplicate key": (
        ({"d.yaml": b"tokenizer: {vocab_size: 8000}\ntokenizer: {vocab_size: 9000}\n"},
         ["data", "all", "--config", "d.yaml", "--out", "data"]),
        "duplicate key 'tokenizer' at line 2"),
    "data config with a negative seed": (
        ({"d.yaml": b"seed: -1\n"}, ["data", "all", "--config", "d.yaml", "--out", "data"]),
        "d.yaml: data.seed: Input should be greater than or equal to 0"),
    "data config with a boolean size": (
        ({"d.yaml": b"tokenizer: {vocab_size: true}\n"},
         ["data", "all", "--config", "d.yaml", "--out", "data"]),
        "data.tokenizer.vocab_size: expected a number"),
    # a step too large to simulate, named rather than enumerated for minutes
    "a step of a million micro-batches": (
        _argv("predict", "--cluster", "fugaku", "--model", "gpt2-small", "--tp", "1", "--pp",
              "2", "--dp", "1", "--global-batch", "1000000"),
        "train.global_batch: 1000000 sequences make 1000000 micro-batches"),
    # outputs that cannot be written: refused before any work, nothing left behind
    "plot in a format matplotlib lacks": (
        _argv("plan", "--cluster", "fugaku", "--model", "gpt2-small", "--nodes", "8",
              "--global-batch", "8", "--plot", "out/x.xyz"), "cannot write a plot as 'xyz'"),
    "plot below a file": (({"f": b"x"}, ["plan", "--cluster", "fugaku", "--model", "gpt2-small",
                                         "--nodes", "8", "--global-batch", "8",
                                         "--plot", "f/x.png"]), "--plot f/x.png: a part of the path is a file"),
    "trace into a folder": (({"d/keep": b""}, ["predict", *TINY, "--trace", "d"]),
                            "--trace d: is a folder"),
    "sweep into a file": (({"sw": b"x"}, ["sweep", *TINY, "--vary", "global_batch",
                                          "--values", "8", "--out", "sw"]),
                          "--out sw: exists and is not a folder"),
    "data into a file": (({"d": b"x"}, ["data", "all", "--out", "d"]),
                         "--out d: exists and is not a folder"),
    "validate into a file": (({"v": b"x"}, ["validate", "--cluster", "local", "--out", "v"]),
                             "--out v: exists and is not a folder"),
    "calibrate into a folder": (({"c/keep": b""}, ["calibrate", "--out", "c"]),
                                "--out c: is a folder"),
    "runs import into a folder": (({"r/keep": b"", "x.log": b"nothing"},
                                   ["runs", "trainer", "x.log", "--cluster", "local",
                                    "--out", "r"]), "--out r: is a folder"),
    "workflow write into a folder": (({"w/keep": b""},
                                      ["workflow", "write", "--section", "layout", "--json",
                                       "{}", "--out", "w"]), "--out w: is a folder"),
    "workflow write of JSON nested 100000 deep": (
        _argv("workflow", "write", "--section", "layout", "--json", "[" * 100000,
              "--out", "w.json"), "--json: "),
    "loss plot in a format matplotlib lacks": (
        ({"m.jsonl": b""}, ["workflow", "loss-plot", "--metrics", "m.jsonl", "--out", "l.xyz"]),
        "--out l.xyz: cannot write a plot as 'xyz'"),
    "release verify of a file": (({"r": b"x"}, ["release", "verify", "r"]),
                                 "release directory not found"),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


@pytest.mark.hostile
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_one_line_exit_2_and_nothing_written(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    (files, argv), expected = CASES[name]
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUGAKU_SIM_PROGRESS", "off")  # progress lines are not the error
    before = _snapshot(tmp_path)
    status, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert status == 2, (name, status, out[-500:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim"), err[-2000:]
    assert "error" in lines[0] and "Traceback" not in err
    assert expected in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "files were written or changed"


def test_the_cases_cover_every_verb_that_takes_a_spec() -> None:
    verbs = {argv[0] for (_, argv), _ in CASES.values()}
    assert {"check", "plan", "predict", "sweep", "campaign", "evaluate", "release", "data",
            "calibrate", "runs", "validate", "workflow"} <= verbs
    assert len(CASES) >= 50


def test_no_case_runs_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli) -> None:
    """Limits are checked before work: the slowest cases (a bomb, a huge step) end at once."""
    import time

    monkeypatch.chdir(tmp_path)
    for name in ("YAML alias bomb", "a step of a million micro-batches",
                 "global batch of a billion"):
        (files, argv), _ = CASES[name]
        for rel, data in files.items():
            (tmp_path / rel).write_bytes(data)
        start = time.monotonic()
        run_cli(*argv)
        assert time.monotonic() - start < 10, name
    assert os.getcwd() == str(tmp_path)
