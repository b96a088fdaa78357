"""The set of short training runs that validation measures and predicts.

A run is a model (a preset, a model YAML path, or the model's shape written inline), a
layout, batch settings and the memory savers (ZeRO stage, recomputation). ``--runs`` takes a
set name (``default``, ``shapes``, ``quick``, ``zero``, ``sp``) or a YAML file holding a list
of runs::

    runs:
      - {model: gpt-tiny, tp: 2, pp: 2, dp: 1, micro_batch: 4, global_batch: 16, steps: 8}
      - {model: gpt-tiny, dp: 2, micro_batch: 4, global_batch: 16, zero_stage: 3,
         recompute: selective}
      - {model: {name: h96, layers: 4, hidden: 96, heads: 4, seq_len: 96, vocab: 4096},
         pp: 2, micro_batch: 2, global_batch: 16, recompute: all}

The default set covers data, tensor and pipeline parallelism and their mixes, 1 to 4 ranks
(4 ranks oversubscribe this 2-core machine) and two model sizes. Every run of one model has
the same global batch, so their step times compare layouts at equal work. The ``shapes`` set
holds out what the presets do not vary: other hidden sizes and head widths, micro-batches of
1 to 8, pipelines of 2 and 4 stages, and full recomputation. The ``zero`` set is the
trainer's ZeRO-1/2/3 and selective-recomputation layouts, up to tp 2 x pp 2 x dp 2 on 8
ranks; the ``sp`` set the same with sequence parallelism (Korthikanti et al. 2022), in both
model families.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.load import read_yaml, validate_section
from fugaku_sim.spec.train import RecomputeMode, ZeroStage


class RunSpec(SpecModel):
    """One measured run: model, layout, batch and how many steps to time."""

    model: str | ModelSpec = Field(description="preset name, model YAML path, or the shape")
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    micro_batch: int = Field(gt=0)
    global_batch: int = Field(gt=0)
    steps: int = Field(default=8, gt=0, description="optimizer steps, warm-up included")
    warmup_steps: int = Field(default=2, ge=0, description="steps not timed")
    zero_stage: ZeroStage = 0
    recompute: RecomputeMode = "none"
    recompute_stages: list[int] = Field(default_factory=list)
    overlap_grad_reduce: bool = False
    grad_bucket_MB: float | None = Field(default=None, gt=0, description="default: preset's")
    sequence_parallel: bool = False
    name: str | None = None

    @property
    def ranks(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def model_name(self) -> str:
        """The preset or path, or the inline model's name."""
        return self.model if isinstance(self.model, str) else self.model.name

    @property
    def label(self) -> str:
        """:func:`layout_label` of the run unless a name is given."""
        return self.name or layout_label(
            self.model_name, self.tp, self.pp, self.dp, self.micro_batch, self.zero_stage,
            self.recompute, self.recompute_stages, self.overlap_grad_reduce,
            self.sequence_parallel)

    def train_options(self) -> list[str]:
        """The ``fugaku-sim train`` options of the memory savers (none for defaults)."""
        out = ["--sequence-parallel"] if self.sequence_parallel else []
        if self.zero_stage:
            out += ["--zero", str(self.zero_stage)]
        if self.recompute != "none":
            out += ["--recompute", self.recompute]
        if self.recompute_stages:
            out += ["--recompute-stages", ",".join(map(str, self.recompute_stages))]
        if self.overlap_grad_reduce:
            out += ["--overlap-grad-reduce"]
        if self.grad_bucket_MB is not None:
            out += ["--grad-bucket-mb", repr(self.grad_bucket_MB)]
        return out

    @property
    def slug(self) -> str:
        """File-name form of the label."""
        return file_slug(self.label)


def layout_label(model: str, tp: int, pp: int, dp: int, micro_batch: int, zero_stage: int = 0,
                 recompute: str = "none", recompute_stages: Sequence[int] = (),
                 overlap_grad_reduce: bool = False, sequence_parallel: bool = False) -> str:
    """``gpt-tiny tp2 pp1 dp2 mb4``, then ``sp`` (sequence parallelism), ``zero2``, the
    recomputation mode (``selective``, ``all``), ``recompute0,1`` and ``overlap`` where set: a
    run's label, and its row's in the comparison."""
    savers = ["sp" if sequence_parallel else "", f"zero{zero_stage}" if zero_stage else "",
              recompute if recompute != "none" else "",
              "recompute" + ",".join(map(str, recompute_stages)) if recompute_stages else "",
              "overlap" if overlap_grad_reduce else ""]
    return " ".join([f"{model} tp{tp} pp{pp} dp{dp} mb{micro_batch}", *(x for x in savers if x)])


def file_slug(text: str) -> str:
    """``text`` with every character but letters, digits, ``-`` and ``_`` made ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _run(model: str, tp: int, pp: int, dp: int, mb: int, gb: int, steps: int) -> RunSpec:
    return RunSpec(model=model, tp=tp, pp=pp, dp=dp, micro_batch=mb, global_batch=gb,
                   steps=steps)


def default_runs() -> list[RunSpec]:
    """Twelve runs: gpt-micro and gpt-tiny on 1, 2 and 4 ranks, DP, TP, PP and mixed.

    Each times about five seconds of steps on a 2-core machine (gpt-micro's steps take
    50-80 ms, gpt-tiny's 0.3-0.7 s): a shared machine's speed drifts by +-15% over
    10-second windows, and the 0.5-4 s that 12 and 8 steps timed moved the same run's
    error by up to 30 points between rounds."""
    micro = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (2, 1, 2)]
    tiny = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (2, 2, 1), (1, 2, 2), (2, 1, 2)]
    return ([_run("gpt-micro", tp, pp, dp, 2, 16, 60) for tp, pp, dp in micro]
            + [_run("gpt-tiny", tp, pp, dp, 4, 16, 12) for tp, pp, dp in tiny])


def quick_runs() -> list[RunSpec]:
    """Two tiny runs for CI: gpt-micro on 1 rank and with data parallelism on 2."""
    return [RunSpec(model="gpt-micro", dp=dp, micro_batch=2, global_batch=8, steps=3,
                    warmup_steps=1) for dp in (1, 2)]


def _shape(name: str, layers: int, hidden: int, heads: int, seq_len: int,
           vocab: int) -> ModelSpec:
    """A GPT-2 shape as the trainer trains it (without dropout)."""
    return ModelSpec(name=name, layers=layers, hidden=hidden, heads=heads, seq_len=seq_len,
                     vocab=vocab, dropout=0.0)


def shape_runs() -> list[RunSpec]:
    """Ten runs of model shapes, micro-batches and pipeline depths the presets (and the
    calibration's own shapes) do not have: hidden 48, 96 and 192 (head widths 16, 24 and
    32), micro-batches 1, 2 and 8, pipelines of 2 and 4 stages, full recomputation. Each
    times about 3-5 seconds of steps on a 2-core machine (see :func:`default_runs`)."""
    h48 = _shape("h48", 4, 48, 3, 64, 1024)
    h96 = _shape("h96", 4, 96, 4, 96, 4096)
    h192 = _shape("h192", 2, 192, 6, 128, 6144)
    rows: list[tuple[ModelSpec, int, int, int, int, int, int, RecomputeMode]] = [
        (h48, 1, 1, 1, 8, 32, 32, "none"),
        (h48, 1, 2, 1, 8, 32, 32, "all"),
        (h48, 1, 4, 1, 4, 32, 28, "none"),
        (h96, 1, 1, 1, 2, 16, 16, "none"),
        (h96, 2, 1, 1, 2, 16, 24, "none"),
        (h96, 1, 2, 2, 2, 16, 20, "none"),
        (h96, 1, 4, 1, 2, 16, 12, "first-half"),
        (h192, 1, 1, 2, 1, 8, 16, "none"),
        (h192, 2, 1, 1, 1, 8, 16, "none"),
        (h192, 1, 2, 1, 1, 8, 12, "all"),
    ]
    return [RunSpec(model=m, tp=tp, pp=pp, dp=dp, micro_batch=mb, global_batch=gb,
                    steps=steps, recompute=rc) for m, tp, pp, dp, mb, gb, steps, rc in rows]


def zero_runs() -> list[RunSpec]:
    """Ten gpt-tiny runs of 1 to 8 ranks: ZeRO 1, 2 and 3 (with and without overlap and
    small buckets), selective recomputation alone, with full recomputation on stage 0, and
    with ZeRO; the layouts the trainer's equivalence tests cover."""
    small = 0.5  # MB: several gradient buckets per stage of gpt-tiny
    layouts: list[tuple[int, int, int, dict[str, Any]]] = [
        (1, 1, 2, {"zero_stage": 1}),
        (1, 1, 2, {"zero_stage": 2, "overlap_grad_reduce": True, "grad_bucket_MB": small}),
        (1, 1, 2, {"zero_stage": 3}),
        (1, 1, 2, {"zero_stage": 3, "overlap_grad_reduce": True}),
        (1, 1, 1, {"recompute": "selective"}),
        (1, 2, 1, {"recompute": "selective", "recompute_stages": [0]}),
        (2, 1, 2, {"zero_stage": 3, "recompute": "selective", "overlap_grad_reduce": True}),
        (1, 2, 2, {"zero_stage": 2, "recompute": "selective", "overlap_grad_reduce": True,
                   "grad_bucket_MB": small}),
        (1, 1, 4, {"zero_stage": 3, "recompute": "all", "overlap_grad_reduce": True}),
        (2, 2, 2, {"zero_stage": 2, "recompute": "selective", "recompute_stages": [0],
                   "overlap_grad_reduce": True, "grad_bucket_MB": small}),
    ]
    return [RunSpec(model="gpt-tiny", tp=tp, pp=pp, dp=dp, micro_batch=4, global_batch=16,
                    steps=8, **savers) for tp, pp, dp, savers in layouts]


def sp_runs() -> list[RunSpec]:
    """Seven sequence-parallel runs of 2 to 8 ranks: gpt-tiny alone and with selective
    recomputation, full recomputation of a pipeline's first half, ZeRO-3 and ZeRO-2 (the
    latter at tp 2 x pp 2 x dp 2), tp 4; llama-tiny at tp 2. The layouts the trainer's
    sequence-parallel equivalence tests cover."""
    small = 0.5  # MB: several gradient buckets per stage of gpt-tiny
    layouts: list[tuple[str, int, int, int, dict[str, Any]]] = [
        ("gpt-tiny", 2, 1, 1, {}),
        ("gpt-tiny", 2, 1, 1, {"recompute": "selective"}),
        ("gpt-tiny", 4, 1, 1, {}),
        ("gpt-tiny", 2, 2, 1, {"recompute": "first-half"}),
        ("gpt-tiny", 2, 1, 2, {"zero_stage": 3, "recompute": "selective",
                               "overlap_grad_reduce": True}),
        ("gpt-tiny", 2, 2, 2, {"zero_stage": 2, "recompute": "selective",
                               "overlap_grad_reduce": True, "grad_bucket_MB": small}),
        ("llama-tiny", 2, 1, 1, {"recompute": "selective"}),
    ]
    return [RunSpec(model=model, tp=tp, pp=pp, dp=dp, micro_batch=4, global_batch=16, steps=8,
                    sequence_parallel=True, **savers)
            for model, tp, pp, dp, savers in layouts]


RUN_SETS = {"default": default_runs, "shapes": shape_runs, "quick": quick_runs,
            "zero": zero_runs, "sp": sp_runs}


def load_runs(ref: str) -> list[RunSpec]:
    """A named set or a YAML list of runs.

    Raises:
        UserError: unknown name, unreadable file, or an invalid run (naming its index).
    """
    if ref in RUN_SETS:
        return RUN_SETS[ref]()
    path = Path(ref)
    if not path.is_file():
        raise UserError(f"--runs: {ref!r} is neither a run set ({', '.join(RUN_SETS)}) "
                        "nor a YAML file")
    raw: Any = read_yaml(path).get("runs") if path.suffix in (".yaml", ".yml") else None
    if not isinstance(raw, list) or not raw:
        raise UserError(f"--runs: {path}: expected a mapping with a non-empty list 'runs:'")
    runs = [validate_section(RunSpec, r, str(path), f"runs.{i}") for i, r in enumerate(raw)]
    for i, r in enumerate(runs):
        if r.warmup_steps >= r.steps:
            raise UserError(f"{path}: runs.{i}.warmup_steps: {r.warmup_steps} leaves no timed "
                            f"step of {r.steps}")
    return runs
