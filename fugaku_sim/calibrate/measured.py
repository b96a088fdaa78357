"""Measured runs as data: the runs format (CSV), its reader and writer, and the bridge to a Job.

A runs file holds one row per measured training configuration: what was trained (a model
preset, or the shape columns), how (layout, batch, recomputation, precision), where (a cluster
profile, nodes, processes per node, clock), with which software (``framework`` and free-form
``cond_*`` columns), what was measured (seconds per optimizer step, memory) and where the
number comes from (``source``, ``date``). The later fit of a software stack reads these files;
the importers (:mod:`~fugaku_sim.calibrate.megatron_log`, :mod:`~fugaku_sim.calibrate.trainer_log`)
write them.

Why CSV: the reference data is transcribed from tables (benchmark notes, papers), one table
row to one file row; CSV keeps that correspondence visible, diffs line by line, opens in a
spreadsheet, and lets every error name a file, a line and a column.

The format (``clusters/runs/README.md`` says the same for a reader of the data):

- UTF-8; a line starting with ``#`` is a comment, a blank line is skipped; the first other
  line is the header; one record per line (no line breaks inside a field).
- Columns in any order. :data:`COLUMNS` lists the known ones; ``id``, ``cluster``, ``model``,
  ``tp``, ``pp``, ``dp``, ``micro_batch``, ``global_batch``, ``recompute``, ``precision``,
  ``nodes``, ``processes_per_node``, ``framework`` and ``source`` are required. Any other column
  is a condition and must be named ``cond_<name>`` (``cond_pytorch``, ``cond_allocator``);
  an unknown name is an error, so a misspelt column cannot pass as a condition.
- An empty field is "not given" (the column's default, or unknown).
- ``model`` is a model preset name, unless all of ``layers``, ``hidden``, ``heads``,
  ``seq_len`` and ``vocab`` are given: then the row's shape is the model and ``model`` only
  names it. ``vocab`` is the vocabulary the network computes with (Megatron pads the
  tokenizer's to a multiple of 128 x tp).
- ``step_time_s``: seconds per optimizer step (one iteration over the global batch, all
  micro-batches of gradient accumulation and the optimizer update). ``time_quality`` says
  what it is: ``measured`` (steady state, as the source reports it), ``first-step`` (only the
  first step ran: warm-up included), ``estimated`` (the source marks it an estimate),
  ``derived`` (computed from a reported throughput; ``source`` gives the formula) or
  ``withdrawn`` (the source later removed it without comment).
- ``nodes`` x ``processes_per_node`` equals ``tp`` x ``pp`` x ``dp``.
- ``representable`` (default true) says whether the simulator can describe the row; a row it
  cannot is kept with ``representable`` false and a ``reason``. Partial (per-layer)
  recomputation is not modelled: a row using it must say ``representable`` false.
- ``duplicate_of`` names the ``id`` of a row that reports the same measurement (a run quoted
  in two tables), so a fit counts it once.
- ``fit_exclude`` gives the reason a fit of a software stack leaves a row out (the source
  flags the run as anomalous, or replicates of it disagree beyond what any recorded condition
  explains); the row stays in the file, and ``calibrate --from-runs`` still reports it.

Errors are one line, ``FILE:LINE:COLUMN: column: what is wrong`` (:class:`UserError`).
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.parallel.placement import Strategy
from fugaku_sim.parallel.schedule import ScheduleKind
from fugaku_sim.spec import (
    ClusterSpec,
    Job,
    Layout,
    ModelSpec,
    TrainSpec,
    load_cluster,
    load_model_preset,
    make_job,
)
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.cluster import at_clock
from fugaku_sim.spec.job import check_batch, check_model_split
from fugaku_sim.spec.limits import CLOCK_GHZ, at_most
from fugaku_sim.spec.stack import StackSpec
from fugaku_sim.spec.train import RecomputeMode, TrainPrecision

COND_PREFIX = "cond_"
SHAPE_COLUMNS = ("layers", "hidden", "heads", "seq_len", "vocab")
UnmodelledRecompute = Literal["partial"]  # in published runs, not in the spec
UNMODELLED_RECOMPUTE = get_args(UnmodelledRecompute)
TimeQuality = Literal["measured", "first-step", "estimated", "derived", "withdrawn"]


class MeasuredRun(SpecModel):
    """One measured configuration (one row of a runs file); see the module docstring."""

    id: str = Field(min_length=1)
    cluster: str = Field(min_length=1, description="cluster profile: preset name or YAML path")
    model: str = Field(min_length=1, description="model preset, or the name of the row's shape")
    layers: int | None = Field(default=None, gt=0)
    hidden: int | None = Field(default=None, gt=0)
    heads: int | None = Field(default=None, gt=0)
    ffn_hidden: int | None = Field(default=None, gt=0)
    seq_len: int | None = Field(default=None, gt=0)
    vocab: int | None = Field(default=None, gt=0, description="padded vocabulary of the network")
    tied_embeddings: bool | None = None
    dropout: float | None = Field(
        default=None, ge=0, lt=1,
        description="dropout probability trained with (empty: the preset's or the family's)")
    tp: int = Field(gt=0)
    pp: int = Field(gt=0)
    dp: int = Field(gt=0)
    schedule: ScheduleKind = "1f1b"
    virtual_stages: int = Field(default=1, gt=0)
    placement: Strategy | None = None
    job_shape: list[int] | None = None
    micro_batch: int = Field(gt=0)
    global_batch: int = Field(gt=0)
    recompute: RecomputeMode | UnmodelledRecompute
    recompute_stages: list[int] = Field(default_factory=list)
    precision: TrainPrecision
    zero_stage: int = Field(default=0, ge=0, le=3)
    overlap_grad_reduce: bool = False
    sequence_parallel: bool = False
    nodes: int = Field(gt=0)
    processes_per_node: int = Field(gt=0)
    clock_GHz: Annotated[float, at_most(CLOCK_GHZ)] | None = Field(default=None, gt=0)
    framework: str = Field(min_length=1, description="training engine: megatron, deepspeed, ...")
    step_time_s: float | None = Field(default=None, gt=0)
    time_quality: TimeQuality | None = None
    steps_timed: int | None = Field(default=None, gt=0)
    reported_tflops_per_rank: float | None = Field(default=None, gt=0)
    mem_MiB: float | None = Field(default=None, gt=0)
    mem_basis: Literal["node-used", "rank-peak"] | None = None
    status: Literal["ok", "oom", "hung", "failed"] = "ok"
    representable: bool = True
    reason: str | None = None
    duplicate_of: str | None = None
    fit_exclude: str | None = Field(
        default=None, min_length=1,
        description="why a fit of a software stack leaves the row out (the row stays data)")
    date: datetime.date | None = None
    source: str = Field(min_length=1)
    notes: str | None = None
    conditions: dict[str, str] = Field(default_factory=dict)

    @field_validator("job_shape", "recompute_stages", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        """``4x6x48`` (a shape) or ``0 1 2`` (stages) in a CSV field -> a list of ints."""
        if isinstance(value, str):
            parts = [p for p in re.split(r"[x\s,]+", value.strip()) if p]
            if not all(p.isdigit() for p in parts):
                raise ValueError(f"expected integers like 4x6x48 or 0 1 2, got {value!r}")
            return [int(p) for p in parts]
        return value

    @field_validator("conditions")
    @classmethod
    def _condition_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
                raise ValueError(f"{COND_PREFIX}{key}: condition names are lower_snake_case")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MeasuredRun:
        given = [c for c in SHAPE_COLUMNS if getattr(self, c) is not None]
        if given and len(given) < len(SHAPE_COLUMNS):
            missing = next(c for c in SHAPE_COLUMNS if getattr(self, c) is None)
            raise ValueError(f"{missing}: a model shape needs all of {', '.join(SHAPE_COLUMNS)}")
        if not given and (self.ffn_hidden is not None or self.tied_embeddings is not None):
            raise ValueError("ffn_hidden: only with a model shape (layers, hidden, ...)")
        world, hosted = self.tp * self.pp * self.dp, self.nodes * self.processes_per_node
        if world != hosted:
            raise ValueError(f"nodes: nodes x processes_per_node = {hosted} but "
                             f"tp x pp x dp = {world}")
        if (self.step_time_s is None) != (self.time_quality is None):
            raise ValueError("time_quality: give it exactly when step_time_s is given")
        if self.status == "ok" and self.step_time_s is None:
            raise ValueError("step_time_s: a run with status ok needs its step time")
        if (self.mem_MiB is None) != (self.mem_basis is None):
            raise ValueError("mem_basis: give it exactly when mem_MiB is given")
        if self.representable and self.reason:
            raise ValueError("reason: only for rows with representable false")
        if not self.representable and not self.reason:
            raise ValueError("reason: say why the row is not representable")
        if self.representable and (unmodelled := _unmodelled(self)):
            column, what = unmodelled[0]
            raise ValueError(f"{column}: {what} is not modelled; set representable to false "
                             "with a reason")
        conditions = {f"{COND_PREFIX}{k}": v for k, v in self.conditions.items()}
        for name, value in [*self.__dict__.items(), *conditions.items()]:
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                raise ValueError(f"{name}: one line only (no line breaks in a field)")
        if self.duplicate_of == self.id:
            raise ValueError("duplicate_of: a row cannot duplicate itself")
        return self

    @property
    def has_shape(self) -> bool:
        return self.layers is not None


def unmodelled_features(recompute: str) -> list[tuple[str, str]]:
    """The settings of a run that the simulator does not model, as (column, what) pairs."""
    return [("recompute", f"{recompute} recomputation")] if recompute in UNMODELLED_RECOMPUTE else []


def _unmodelled(run: MeasuredRun) -> list[tuple[str, str]]:
    return unmodelled_features(run.recompute)


COLUMNS: tuple[str, ...] = tuple(f for f in MeasuredRun.model_fields if f != "conditions")
REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    f for f in COLUMNS if MeasuredRun.model_fields[f].is_required())


# ---------------------------------------------------------------------------- the Job


def run_model(run: MeasuredRun) -> ModelSpec:
    """The row's model: its shape, or the preset it names.

    Raises:
        SpecError: unknown preset, or a shape the model spec rejects.
    """
    dropout = {} if run.dropout is None else {"dropout": run.dropout}
    if not run.has_shape:
        try:
            preset = load_model_preset(run.model).model
        except SpecError as exc:  # its message names the --model option; here it is a column
            raise SpecError(f"model: {str(exc).removeprefix('--model: ')}") from None
        return preset.model_copy(update=dropout)
    fields = {"name": run.model, "ffn_hidden": run.ffn_hidden,
              **{c: getattr(run, c) for c in SHAPE_COLUMNS}, **dropout}
    if run.tied_embeddings is not None:
        fields["tied_embeddings"] = run.tied_embeddings
    return _validated(ModelSpec, fields)


def run_train(run: MeasuredRun) -> TrainSpec:
    """The row's training settings (batch, precision, recomputation, ZeRO, overlap).

    Raises:
        SpecError: a feature the spec does not model, or inconsistent settings.
    """
    if unmodelled := _unmodelled(run):
        column, what = unmodelled[0]
        raise SpecError(f"{column}: {what} is not modelled by the simulator")
    return _validated(TrainSpec, {
        "global_batch": run.global_batch, "micro_batch": run.micro_batch,
        "precision": run.precision, "recompute": run.recompute,
        "recompute_stages": run.recompute_stages, "zero_stage": run.zero_stage,
        "overlap_grad_reduce": run.overlap_grad_reduce})


def run_layout(run: MeasuredRun) -> Layout:
    """The row's layout, with its processes per node (and placement, job shape if given)."""
    fields: dict[str, Any] = {"tp": run.tp, "pp": run.pp, "dp": run.dp,
                              "schedule": run.schedule, "virtual_stages": run.virtual_stages,
                              "processes_per_node": run.processes_per_node,
                              "job_shape": run.job_shape,
                              "sequence_parallel": run.sequence_parallel}
    if run.placement is not None:
        fields["placement"] = run.placement
    return _validated(Layout, fields)


@cache
def _cluster(ref: str) -> ClusterSpec:
    return load_cluster(ref)


def job_of(run: MeasuredRun, cluster: ClusterSpec | None = None,
           stack: StackSpec | None = None) -> Job:
    """The simulator's :class:`Job` for a representable row, on its cluster profile at the
    row's clock (:func:`~fugaku_sim.spec.cluster.at_clock`), on ``stack`` (ideal if None).

    Raises:
        SpecError: the row is marked not representable, its cluster is unknown, or the
            combination fails the spec's cross-field rules (naming the field).
    """
    if not run.representable:
        raise SpecError(f"run {run.id}: marked not representable ({run.reason})")
    hardware = at_clock(cluster or _cluster(run.cluster), run.clock_GHz)
    return make_job(hardware, run_model(run), run_train(run), run_layout(run), stack)


def _validated(model: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SpecError(f"{loc}: {msg}" if loc else msg) from None


def check_spec_rules(run: MeasuredRun) -> None:
    """The spec's own rules on the row (heads and ffn split over tp, layers over pp, batch
    over micro-batch x dp, model shape), for every row, representable or not.

    Raises:
        SpecError: naming the field (``layout.tp: ...``, ``train.global_batch: ...``).
    """
    model = run_model(run)
    train_fields: dict[str, Any] = {"global_batch": run.global_batch, "micro_batch": run.micro_batch}
    if run.recompute not in UNMODELLED_RECOMPUTE:
        train_fields |= {"recompute": run.recompute, "recompute_stages": run.recompute_stages}
    layout = run_layout(run)
    check_model_split(model, layout)
    check_batch(_validated(TrainSpec, train_fields), layout)


# ---------------------------------------------------------------------------- reading


def _column_of(message: str, columns: Iterable[str]) -> tuple[str | None, str]:
    """``layout.tp: 5 does not divide ...`` -> (``tp``, ``5 does not divide ...``)."""
    head, sep, rest = message.partition(": ")
    if sep:
        name = head.split()[0].split(".")[-1] if head.split() else ""
        if name in columns or name.startswith(COND_PREFIX):
            return name, rest
    return None, message


class _Reader:
    """Reads one runs file; every error names the file, line and column."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: list[str] = []
        self.header_line = 0

    def fail(self, line: int, column: str | None, message: str, col: int | None = None) -> UserError:
        """The error for ``column`` (1-based position ``col``, else its place in the header,
        else one past the last column: where it would be added)."""
        if column is None:
            return UserError(f"{self.path}:{line}: {message}")
        if col is None:
            col = self.header.index(column) + 1 if column in self.header else len(self.header) + 1
        return UserError(f"{self.path}:{line}:{col}: {column}: {message}")

    def records(self, text: str) -> Iterator[tuple[int, list[str]]]:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                fields = next(csv.reader([line], strict=True))
            except csv.Error as exc:
                raise self.fail(number, None, f"not a CSV record ({exc})") from None
            yield number, [f.strip() for f in fields]

    def set_header(self, line: int, names: list[str]) -> None:
        self.header, self.header_line = names, line
        seen: set[str] = set()
        for col, name in enumerate(names, start=1):
            if name in seen:
                raise self.fail(line, name, "column given twice", col)
            seen.add(name)
            if name not in COLUMNS and not name.startswith(COND_PREFIX):
                raise self.fail(line, name, f"unknown column (misspelt? condition columns "
                                            f"are named {COND_PREFIX}<name>)", col)
        missing = [c for c in REQUIRED_COLUMNS if c not in seen]
        if missing:
            raise self.fail(line, None, f"missing required column {missing[0]!r}")

    def row(self, line: int, fields: list[str]) -> MeasuredRun:
        if len(fields) != len(self.header):
            raise self.fail(line, None, f"{len(fields)} fields but the header (line "
                                        f"{self.header_line}) has {len(self.header)}")
        data: dict[str, Any] = {"conditions": {}}
        for name, value in zip(self.header, fields):
            if value == "":
                continue
            if name.startswith(COND_PREFIX):
                data["conditions"][name.removeprefix(COND_PREFIX)] = value
            else:
                data[name] = value
        try:
            run = MeasuredRun.model_validate(data)
        except ValidationError as exc:
            raise self.validation_error(line, exc) from None
        try:
            check_spec_rules(run)
        except SpecError as exc:
            column, message = _column_of(str(exc), self.header)
            raise self.fail(line, column or "model", message) from None
        return run

    def validation_error(self, line: int, exc: ValidationError) -> UserError:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        msg = str(err["msg"]).removeprefix("Value error, ")
        column: str | None = loc[0] if loc else None
        if column == "conditions":
            column = f"{COND_PREFIX}{loc[1]}" if len(loc) > 1 else None
        if column is None:
            column, msg = _column_of(msg, COLUMNS)
        elif err["type"] == "missing":
            msg = "required, but empty"
        elif err["type"] != "value_error" and "input" in err:
            msg += f" (got {err['input']!r})"
        return self.fail(line, column, msg)


def parse_runs(text: str, path: Path) -> list[MeasuredRun]:
    """The rows of a runs file's ``text`` (``path`` names it in errors).

    Raises:
        UserError: ``FILE:LINE:COLUMN: column: problem`` for the first bad field, a bad
            header, a duplicate id, a ``duplicate_of`` naming no row, or no rows at all.
    """
    reader = _Reader(path)
    runs: list[MeasuredRun] = []
    lines: dict[str, int] = {}
    for number, fields in reader.records(text):
        if not reader.header:
            reader.set_header(number, fields)
            continue
        run = reader.row(number, fields)
        if run.id in lines:
            raise reader.fail(number, "id", f"{run.id!r} is already the id of line "
                                            f"{lines[run.id]}")
        lines[run.id] = number
        runs.append(run)
    if not reader.header:
        raise UserError(f"{path}: no header line (an empty runs file?)")
    if not runs:
        raise UserError(f"{path}: no runs after the header")
    for run in runs:
        if run.duplicate_of is not None and run.duplicate_of not in lines:
            raise reader.fail(lines[run.id], "duplicate_of",
                              f"no row with id {run.duplicate_of!r}")
    return runs


def read_runs(path: str | Path) -> list[MeasuredRun]:
    """Read and validate a runs file.

    Raises:
        UserError: the file is missing or unreadable, or any row is malformed (see
            :func:`parse_runs`).
    """
    from fugaku_sim.io import read_text

    path = Path(path)
    text = read_text(path, str(path), kind="runs file")
    return parse_runs(text, path)


# ---------------------------------------------------------------------------- writing


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def format_runs(runs: Iterable[MeasuredRun], comments: Iterable[str] = ()) -> str:
    """CSV text of ``runs``: ``# comment`` lines, the header (every known column, then the
    condition columns in order of first use), one line per run. :func:`parse_runs` reads
    it back to equal rows."""
    runs = list(runs)
    conditions: dict[str, None] = {}
    for run in runs:
        conditions.update(dict.fromkeys(run.conditions))
    header = [*COLUMNS, *(f"{COND_PREFIX}{c}" for c in conditions)]
    out = io.StringIO()
    for comment in comments:
        out.write(f"# {comment}\n" if comment else "#\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for run in runs:
        row = [_field_text(getattr(run, c)) for c in COLUMNS]
        row[COLUMNS.index("job_shape")] = "x".join(map(str, run.job_shape or []))
        writer.writerow([*row, *(run.conditions.get(c, "") for c in conditions)])
    return out.getvalue()


def write_runs(path: str | Path, runs: Iterable[MeasuredRun], comments: Iterable[str] = ()) -> None:
    """Write a runs file atomically (nothing half-written on failure)."""
    from fugaku_sim.io import write_text

    write_text(path, format_runs(runs, comments))
