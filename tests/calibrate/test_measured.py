"""The runs format: reading, writing, round trip, errors with file:line:column, the Job bridge."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fugaku_sim.calibrate.measured import (
    COLUMNS,
    REQUIRED_COLUMNS,
    MeasuredRun,
    format_runs,
    job_of,
    parse_runs,
    read_runs,
    write_runs,
)
from fugaku_sim.errors import SpecError, UserError

HEADER = ("id,cluster,model,tp,pp,dp,micro_batch,global_batch,recompute,precision,nodes,"
          "processes_per_node,framework,step_time_s,time_quality,source,cond_pytorch")
GOOD = "a,fugaku,gpt2-small,1,1,4,1,1024,none,fp32,1,4,megatron,613.2,measured,notes,1.10"


def _parse(*lines: str) -> list[MeasuredRun]:
    return parse_runs("\n".join(lines) + "\n", Path("runs.csv"))


def _base(**changes: object) -> MeasuredRun:
    fields: dict[str, object] = dict(
        id="r1", cluster="fugaku", model="gpt-1.3b", layers=24, hidden=2048, heads=32,
        seq_len=1024, vocab=50688, tp=4, pp=1, dp=16, micro_batch=1, global_batch=1024,
        recompute="none", precision="fp32", nodes=64, processes_per_node=1, clock_GHz=2.0,
        framework="megatron", step_time_s=162.5, time_quality="measured", source="notes")
    return MeasuredRun.model_validate(fields | changes)


def test_a_minimal_file_reads_with_defaults_and_conditions() -> None:
    (run,) = _parse("# a comment", "", HEADER, GOOD)
    assert (run.id, run.model, run.tp, run.dp, run.nodes, run.processes_per_node) == (
        "a", "gpt2-small", 1, 4, 1, 4)
    assert run.schedule == "1f1b" and run.status == "ok" and run.representable
    assert run.conditions == {"pytorch": "1.10"}
    assert not run.has_shape


def test_round_trip_of_a_full_row(tmp_path: Path) -> None:
    run = _base(job_shape=[4, 4, 4], placement="linear", recompute="stages",
                recompute_stages=[0, 1], pp=2, dp=8, nodes=64, mem_MiB=18502.5,
                mem_basis="node-used", reported_tflops_per_rank=0.84, steps_timed=98,
                date=datetime.date(2023, 2, 15), notes='a "quoted", comma note',
                conditions={"pytorch": "1.10", "allocator": "tcmalloc"})
    other = _base(id="r2", duplicate_of="r1", representable=False, reason="because, why",
                  recompute="selective")
    path = tmp_path / "runs.csv"
    write_runs(path, [run, other], comments=["written by a test", ""])
    assert read_runs(path) == [run, other]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# written by a test\n#\n")
    assert "4x4x4" in text and "0 1" in text


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.0123456789 ,\"'", min_size=1,
                 max_size=20).filter(lambda s: s.strip() == s and s)


@settings(max_examples=60, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 3, 4, 6]),
       dp=st.integers(1, 64), ppn=st.sampled_from([1, 2, 4]), mb=st.sampled_from([1, 2, 4]),
       accum=st.integers(1, 8), time=st.floats(1e-3, 1e6, allow_nan=False),
       note=_names, cond=_names, clock=st.none() | st.floats(0.5, 5.0))
def test_round_trip_of_generated_rows(tp: int, pp: int, dp: int, ppn: int, mb: int,
                                      accum: int, time: float, note: str, cond: str,
                                      clock: float | None) -> None:
    world = tp * pp * dp
    if world % ppn:
        ppn = 1
    run = _base(tp=tp, pp=pp, dp=dp, layers=24 * pp, micro_batch=mb,
                global_batch=mb * dp * accum, nodes=world // ppn, processes_per_node=ppn,
                step_time_s=time, notes=note, clock_GHz=clock, conditions={"x_y": cond})
    assert parse_runs(format_runs([run]), Path("g.csv")) == [run]


@pytest.mark.parametrize(("line", "expected"), [
    (GOOD.replace(",1,1,4,1,", ",1,x,4,1,"), "runs.csv:2:5: pp: Input should be a valid integer"),
    (GOOD.replace("fp32", "fp64"), "runs.csv:2:10: precision: Input should be 'fp32'"),
    (GOOD.replace(",1,4,megatron", ",2,4,megatron"),
     "runs.csv:2:11: nodes: nodes x processes_per_node = 8 but tp x pp x dp = 4"),
    (GOOD.replace("gpt2-small", "gpt-nope"), "runs.csv:2:3: model: no model preset 'gpt-nope'"),
    (GOOD.replace("1024", "1023"), "runs.csv:2:8: global_batch: 1023 is not a multiple"),
    (GOOD.replace(",1,1,4,1,1024", ",5,1,4,1,1024").replace(",1,4,megatron", ",20,1,megatron"),
     "runs.csv:2:4: tp: 5 does not divide model.heads (12)"),
    (GOOD.replace("613.2,measured", ",measured"),
     "runs.csv:2:15: time_quality: give it exactly when step_time_s is given"),
    (GOOD.replace("613.2,measured", ","), "runs.csv:2:14: step_time_s: a run with status ok"),
    (GOOD.replace("613.2", "-1"), "runs.csv:2:14: step_time_s: Input should be greater than 0"),
    (GOOD.replace(",megatron,", ",,"), "runs.csv:2:13: framework: required, but empty"),
    (GOOD.replace(",none,", ",partial,"),
     "runs.csv:2:9: recompute: partial recomputation is not modelled"),
    (GOOD + ",extra", "runs.csv:2: 18 fields but the header (line 1) has 17"),
    (GOOD.replace("notes", '"unclosed'), "runs.csv:2: not a CSV record"),
])
def test_a_malformed_row_names_file_line_and_column(line: str, expected: str) -> None:
    with pytest.raises(UserError) as info:
        _parse(HEADER, line)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_column_the_header_lacks_is_placed_one_past_the_last() -> None:
    """A rule on a column the header lacks points where that column would be added."""
    with pytest.raises(UserError, match=r"runs\.csv:2:18: sequence_parallel: needs layout\.tp > 1"):
        _parse(HEADER + ",x_dummy".replace("x_dummy", "sequence_parallel"), GOOD + ",true")


@pytest.mark.parametrize(("header", "expected"), [
    (HEADER.replace("tp,", "tpp,"), "runs.csv:1:4: tpp: unknown column (misspelt?"),
    (HEADER.replace(",source", ""), "runs.csv:1: missing required column 'source'"),
    (HEADER + ",tp", "runs.csv:1:18: tp: column given twice"),
])
def test_a_bad_header_is_named(header: str, expected: str) -> None:
    with pytest.raises(UserError) as info:
        _parse(header, GOOD)
    assert str(info.value).startswith(expected), str(info.value)


def test_ids_are_unique_and_duplicates_point_at_a_row() -> None:
    with pytest.raises(UserError, match=r"runs\.csv:3:1: id: 'a' is already the id of line 2"):
        _parse(HEADER, GOOD, GOOD)
    header = HEADER + ",duplicate_of"
    with pytest.raises(UserError, match=r"runs\.csv:2:18: duplicate_of: no row with id 'zz'"):
        _parse(header, GOOD + ",zz")
    runs = _parse(header, GOOD + ",", GOOD.replace("a,", "b,", 1) + ",a")
    assert runs[1].duplicate_of == "a"


def test_condition_names_are_checked() -> None:
    header = HEADER.replace("cond_pytorch", "cond_PyTorch")
    with pytest.raises(UserError, match=r"runs\.csv:2:17: cond_PyTorch: condition names"):
        _parse(header, GOOD)


def test_shape_columns_come_together() -> None:
    header = HEADER + ",layers,hidden"
    with pytest.raises(UserError, match=r"runs\.csv:2:20: heads: a model shape needs all"):
        _parse(header, GOOD + ",12,768")


def test_not_representable_needs_a_reason() -> None:
    header = HEADER + ",representable,reason"
    with pytest.raises(UserError, match=r"runs\.csv:2:19: reason: say why"):
        _parse(header, GOOD + ",false,")
    with pytest.raises(UserError, match=r"runs\.csv:2:19: reason: only for rows"):
        _parse(header, GOOD + ",true,because")
    (run,) = _parse(header, GOOD.replace(",none,", ",selective,") + ",false,selective")
    assert not run.representable


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no header line"):
        _parse("# only a comment")
    with pytest.raises(UserError, match="no runs after the header"):
        _parse(HEADER)
    with pytest.raises(UserError, match="missing.csv: no such file"):
        read_runs(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        read_runs(tmp_path / "bin.csv")


def test_line_breaks_inside_a_field_are_refused() -> None:
    with pytest.raises(ValueError, match="notes: one line only"):
        _base(notes="two\nlines")


def test_columns_are_the_model_fields() -> None:
    assert COLUMNS[0] == "id" and "conditions" not in COLUMNS
    assert set(REQUIRED_COLUMNS) == {
        "id", "cluster", "model", "tp", "pp", "dp", "micro_batch", "global_batch", "recompute",
        "precision", "nodes", "processes_per_node", "framework", "source"}


def test_job_of_builds_the_simulators_job() -> None:
    job = job_of(_base())
    assert (job.nodes, job.processes_per_node, job.layout.tp, job.layout.dp) == (64, 1, 4, 16)
    assert (job.model.layers, job.model.hidden, job.model.vocab) == (24, 2048, 50688)
    four = job_of(_base(tp=1, dp=4, nodes=1, processes_per_node=4))
    assert (four.nodes, four.processes_per_node) == (1, 4)
    preset = job_of(_base(model="gpt3-175b", layers=None, hidden=None, heads=None, seq_len=None,
                          vocab=None, cluster="dgx-a100", tp=8, pp=12, dp=4, nodes=48,
                          processes_per_node=8, global_batch=1536, precision="fp16"))
    assert preset.model.name == "gpt3-175b" and preset.nodes == 48


def test_job_of_refuses_what_it_cannot_represent() -> None:
    run = _base(representable=False, reason="SwiGLU", recompute="selective")
    with pytest.raises(SpecError, match="marked not representable"):
        job_of(run)
    with pytest.raises(SpecError, match="no such file|no cluster preset"):
        job_of(_base(cluster="no-such-cluster"))
