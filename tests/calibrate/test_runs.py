"""Run sets: the held-out shapes set, inline model shapes and recomputation in a runs file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fugaku_sim.calibrate.execute import model_of, model_ref, prepare_data, train_argv
from fugaku_sim.calibrate.runs import RunSpec, default_runs, load_runs, shape_runs
from fugaku_sim.errors import UserError
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model, make_job


def test_shape_runs_hold_out_what_the_presets_do_not_vary() -> None:
    runs = shape_runs()
    default = default_runs()
    preset_hidden = {load_model(str(r.model)).hidden for r in default}
    assert not {model_of(r).hidden for r in runs} & preset_hidden
    assert {r.micro_batch for r in runs} - {r.micro_batch for r in default}
    assert {r.pp for r in runs} >= {1, 2, 4} and {r.ranks for r in runs} == {1, 2, 4}
    assert {r.recompute for r in runs} == {"none", "all", "first-half"}
    assert load_runs("shapes") == runs
    local = load_cluster("local")
    for r in runs:  # every run is a valid job
        make_job(local, model_of(r), TrainSpec(global_batch=r.global_batch,
                                               micro_batch=r.micro_batch, recompute=r.recompute),
                 Layout(tp=r.tp, pp=r.pp, dp=r.dp, processes_per_node=r.ranks))


def test_inline_model_and_recompute_in_a_runs_file(tmp_path: Path) -> None:
    f = tmp_path / "runs.yaml"
    f.write_text("runs:\n  - {model: {name: h48, layers: 2, hidden: 48, heads: 3, seq_len: 32,"
                 " vocab: 512}, pp: 2, micro_batch: 2, global_batch: 8, recompute: all}\n")
    (run,) = load_runs(str(f))
    assert run.label == "h48 tp1 pp2 dp1 mb2 all" and run.model_name == "h48"
    ref = model_ref(run, tmp_path)
    assert load_model(ref) == run.model  # the trainer reads back the same shape
    argv = train_argv(run, ref, tmp_path / "data", tmp_path / "out")
    assert argv[argv.index("--recompute") + 1] == "all"
    assert argv[argv.index("--model") + 1] == ref
    f.write_text("runs:\n  - {model: gpt-micro, micro_batch: 2, global_batch: 8, "
                 "recompute: sometimes}\n")
    with pytest.raises(UserError, match=r"runs\.0\.recompute"):
        load_runs(str(f))


def test_two_inline_models_with_one_name_are_refused(tmp_path: Path) -> None:
    a = RunSpec.model_validate({"model": {"name": "m", "layers": 2, "hidden": 48, "heads": 3,
                                          "seq_len": 32, "vocab": 512},
                                "micro_batch": 1, "global_batch": 2})
    b = a.model_copy(update={"model": a.model.model_copy(update={"hidden": 96})})  # type: ignore[union-attr]
    with pytest.raises(UserError, match="two different models are named 'm'"):
        prepare_data([a, b], tmp_path)
