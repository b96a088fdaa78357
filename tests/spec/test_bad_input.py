"""Bad input a user can cause: exit status 2 and one line naming what to fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fugaku_sim.spec.load import REPO_CLUSTER_DIR

FUGAKU = yaml.safe_load((REPO_CLUSTER_DIR / "fugaku.yaml").read_text())
LLM = ["--model", "fugaku-llm-13b"]
PROD = [*LLM, "--tp", "6", "--pp", "8", "--dp", "288", "--global-batch", "2016"]
SMALL = ["--model", "gpt2-small", "--tp", "1", "--pp", "1"]


def _cluster(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        data = copy.deepcopy(FUGAKU)
        edit(data)
        path = tmp / "cluster.yaml"
        path.write_text(yaml.safe_dump(data))
        return ["--cluster", str(path), *PROD]

    return make


def _text(name: str, text: str, flag: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        path = tmp / name
        path.write_text(text)
        rest = PROD if flag == "--cluster" else ["--cluster", "fugaku", "--global-batch", "8"]
        return [flag, str(path), *rest]

    return make


def _args(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["--cluster", "fugaku", *argv]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value

    return edit


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


CASES = {
    "misspelt cluster key": (_cluster(_set("node.mem_GB", 32)), "node.mem_GB: unknown key"),
    "negative link bandwidth": (
        _cluster(_set("interconnect.link_bw_GBps", -6.8)), "interconnect.torus.link_bw_GBps"),
    "zero cores": (_cluster(_set("node.cores", 0)), "node.cores"),
    "efficiency above one": (
        _cluster(_set("node.gemm_efficiency.0.efficiency", 1.5)), "gemm_efficiency.0.efficiency"),
    "unsorted efficiency curve": (
        _cluster(_set("node.gemm_efficiency.0.min_dim", 10**6)), "min_dim values must be"),
    "unknown interconnect kind": (_cluster(_set("interconnect.kind", "ring")), "interconnect"),
    "missing node section": (_cluster(_drop("node")), "node: missing required key"),
    "max nodes beyond torus": (_cluster(_set("allocation.max_nodes", 10**6)), "allocation.max_nodes"),
    "unknown folded axis": (
        _cluster(_set("allocation.virtual_axes", [["X", "q"], ["Y", "b"], ["Z", "c"]])),
        "allocation.virtual_axes.0"),
    "yaml syntax error": (_text("bad.yaml", "node: [1, 2\n", "--cluster"), "YAML syntax error"),
    "yaml not a mapping": (_text("list.yaml", "- 1\n- 2\n", "--cluster"), "expected a mapping"),
    "missing cluster file": (lambda tmp: ["--cluster", str(tmp / "none.yaml"), *PROD], "no such file"),
    "unknown cluster preset": (lambda tmp: ["--cluster", "fugakuu", *PROD], "no cluster preset 'fugakuu'"),
    "unknown model preset": (_args("--model", "gpt-13"), "no model preset 'gpt-13'"),
    "hidden not divisible by heads": (
        _text("m.yaml", "model: {name: m, layers: 2, hidden: 10, heads: 3, seq_len: 8, vocab: 16}\n",
              "--model"), "model.hidden"),
    "misspelt model key": (
        _text("m.yaml", "model: {name: m, layer: 2, hidden: 8, heads: 2, seq_len: 8, vocab: 16}\n",
              "--model"), "model.layer: unknown key"),
    "tp does not divide heads": (_args(*LLM, "--tp", "5"), "layout.tp: 5 does not divide model.heads"),
    "pp does not divide layers": (_args(*LLM, "--pp", "3"), "layout.pp: 3 does not divide model.layers"),
    "negative tp": (_args(*LLM, "--tp", "-2"), "layout.tp"),
    "batch not divisible": (
        _args(*PROD, "--micro-batch", "4"), "train.global_batch: 2016 is not a multiple of train.micro_batch x layout.dp"),
    "too many nodes": (
        _args(*LLM, "--tp", "1", "--pp", "1", "--dp", "200000", "--global-batch", "200000"),
        "cluster.allocation.max_nodes"),
    "job shape exceeds machine": (_args(*PROD, "--job-shape", "96x6x24"), "axis 0 is 96"),
    "job shape wrong node count": (_args(*PROD, "--job-shape", "48x6x24"), "holds 6912 nodes"),
    "job shape off the tofu unit": (_args(*PROD, "--job-shape", "48x8x36"), "allocation unit"),
    "job shape with four axes": (_args(*PROD, "--job-shape", "24x2x48x6"), "has 4 axes"),
    "job shape not a shape": (_args(*PROD, "--job-shape", "48x6xA"), "not a shape like"),
    "recompute stage beyond pp": (_args(*PROD, "--recompute-stages", "9"), "train.recompute_stages"),
    "unknown rank order": (_args(*PROD, "--rank-order", "tp-xx-pp"), "argument --rank-order: invalid choice"),
    "min lr above lr": (_args(*PROD, "--lr", "1e-6"), "train.min_lr"),
    "interleaved without stages": (
        _args(*LLM, "--tp", "6", "--pp", "1", "--dp", "288", "--schedule", "interleaved",
              "--global-batch", "2016"), "layout.schedule: interleaved needs layout.pp >= 2"),
    "unknown schedule": (_args(*PROD, "--schedule", "zigzag"), "invalid choice: 'zigzag'"),
    "noncont beyond the small groups": (
        _args(*SMALL, "--dp", "512", "--global-batch", "512", "--allocation", "noncont"),
        "layout.allocation: noncont allocation is not available for 512 nodes on fugaku"),
    "noncont given a shape": (
        _args(*SMALL, "--tp", "4", "--dp", "16", "--global-batch", "16", "--job-shape", "4x4x4",
              "--allocation", "noncont"), "layout.job_shape: a noncont job asks for a node count"),
    "allocation on a switched fabric": (
        _args(*SMALL, "--cluster", "dgx-a100", "--dp", "8", "--global-batch", "8",
              "--allocation", "torus"), "layout.allocation: dgx-a100 is a switched fabric"),
    "unknown allocation": (_args(*PROD, "--allocation", "mesh"), "invalid choice: 'mesh'"),
    "resource group upside down": (
        _cluster(_set("allocation.resource_groups.0.min_nodes", 500)),
        "allocation.resource_groups.0.max_nodes: 384 is below min_nodes (500)"),
    "resource group beyond the machine": (
        _cluster(_set("allocation.resource_groups.1.max_nodes", 100000)),
        "allocation.resource_groups.1.max_nodes: 100000 exceeds max_nodes (82944)"),
    "sequence parallel without tp": (
        _args(*SMALL, "--dp", "8", "--global-batch", "8", "--sequence-parallel"),
        "layout.sequence_parallel: needs layout.tp > 1"),
    "zero 3 with a pipeline": (
        _args(*PROD, "--zero", "3"), "train.zero_stage: stage 3 gathers each layer's weights"),
    "selective recompute listing every stage": (
        _args(*PROD, "--recompute", "selective", "--recompute-stages", "0-7"),
        "train.recompute_stages: lists every stage, so selective recompute applies nowhere"),
    "kv heads not dividing heads": (
        _text("m.yaml", "model: {name: m, layers: 2, hidden: 16, heads: 4, kv_heads: 3, "
              "seq_len: 8, vocab: 16}\n", "--model"), "model.kv_heads: 3 does not divide heads"),
    "mixed architecture family": (
        _text("m.yaml", "model: {name: m, layers: 2, hidden: 16, heads: 4, norm: rmsnorm, "
              "seq_len: 8, vocab: 16}\n", "--model"), "is not a supported family"),
    "swiglu without its width": (
        _text("m.yaml", "model: {name: m, layers: 2, hidden: 16, heads: 4, norm: rmsnorm, "
              "mlp: swiglu, positions: rotary, seq_len: 8, vocab: 16}\n", "--model"),
        "model.ffn_hidden: give the gated MLP's width"),
    "unknown attention kind": (_args(*PROD, "--attention", "sparse"), "invalid choice: 'sparse'"),
    "unknown allocation method": (
        _cluster(_set("allocation.resource_groups.0.kinds", ["noncont", "cube"])),
        "allocation.resource_groups.0.kinds.1"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_one_line(name: str, tmp_path: Path, run_cli) -> None:
    make_args, expected = CASES[name]
    status, out, err = run_cli("check", *make_args(tmp_path))
    assert status == 2, (name, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fugaku-sim: error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err and out == ""


def test_each_mistake_gets_its_own_message(tmp_path: Path, run_cli) -> None:
    """The cases above are told apart: no two of them get the same error line (a catch-all
    message such as "invalid input" would pass each case's substring check only by luck)."""
    lines = {}
    for name, (make_args, _) in CASES.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        _, _, err = run_cli("check", *make_args(folder))
        lines[name] = err.strip().replace(str(folder), "DIR")
    assert len(set(lines.values())) == len(CASES), lines


def test_the_simulator_takes_llama_and_the_trainer_refuses_flash_attention() -> None:
    """The simulator models the Llama family, grouped-query attention and bias-free layers;
    the numpy trainer computes materialized attention only."""
    from fugaku_sim.errors import SpecError
    from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job
    from fugaku_sim.spec.job import check_modelled

    model = load_model_preset("llama-2-70b").model
    flash = TrainSpec(global_batch=8, attention="flash")
    make_job(load_cluster("dgx-a100"), model, flash, Layout(tp=8, dp=8))
    check_modelled(model, flash, Layout(), "sim")
    with pytest.raises(SpecError, match="train.attention: flash: not modelled by the trainer"):
        check_modelled(model.model_copy(update={"mlp": "gelu", "norm": "layernorm",
                                                "positions": "learned", "kv_heads": None,
                                                "bias": True}), flash, Layout(), "train")
