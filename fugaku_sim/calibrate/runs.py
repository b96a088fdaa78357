"""The set of short training runs that validation measures and predicts.

A run is a model (a preset, a model YAML path, or the model's shape written inline), a
layout and batch settings. ``--runs`` takes a set name (``default``, ``shapes``, ``quick``) or
a YAML file holding a list of runs::

    runs:
      - {model: gpt-tiny, tp: 2, pp: 2, dp: 1, micro_batch: 4, global_batch: 16, steps: 8}
      - {model: {name: h96, layers: 4, hidden: 96, heads: 4, seq_len: 96, vocab: 4096},
         pp: 2, micro_batch: 2, global_batch: 16, recompute: all}

The default set covers data, tensor and pipeline parallelism and their mixes, 1 to 4 ranks
(4 ranks oversubscribe this 2-core machine) and two model sizes. Every run of one model has
the same global batch, so their step times compare layouts at equal work. The ``shapes`` set
holds out what the presets do not vary: other hidden sizes and head widths, micro-batches of
1 to 8, pipelines of 2 and 4 stages, and full recomputation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fugaku_sim.errors import UserError
from fugaku_sim.spec import ModelSpec
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.load import read_yaml, validate_section

# full recomputation modes that need no stage list (TrainSpec.recompute)
RunRecompute = Literal["none", "all", "first-half"]


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
    recompute: RunRecompute = "none"
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
        """``gpt-tiny tp2 pp1 dp2 mb4`` (`` rc-all`` with recomputation) unless a name is
        given."""
        rc = "" if self.recompute == "none" else f" rc-{self.recompute}"
        return self.name or (f"{self.model_name} tp{self.tp} pp{self.pp} dp{self.dp} "
                             f"mb{self.micro_batch}{rc}")

    @property
    def slug(self) -> str:
        """File-name form of the label."""
        return file_slug(self.label)


def file_slug(text: str) -> str:
    """``text`` with every character but letters, digits, ``-`` and ``_`` made ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _run(model: str, tp: int, pp: int, dp: int, mb: int, gb: int, steps: int) -> RunSpec:
    return RunSpec(model=model, tp=tp, pp=pp, dp=dp, micro_batch=mb, global_batch=gb,
                   steps=steps)


def default_runs() -> list[RunSpec]:
    """Twelve runs: gpt-micro and gpt-tiny on 1, 2 and 4 ranks, DP, TP, PP and mixed."""
    micro = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (2, 1, 2)]
    tiny = [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (2, 2, 1), (1, 2, 2), (2, 1, 2)]
    return ([_run("gpt-micro", tp, pp, dp, 2, 16, 12) for tp, pp, dp in micro]
            + [_run("gpt-tiny", tp, pp, dp, 4, 16, 8) for tp, pp, dp in tiny])


def quick_runs() -> list[RunSpec]:
    """Two tiny runs for CI: gpt-micro on 1 rank and with data parallelism on 2."""
    return [RunSpec(model="gpt-micro", dp=dp, micro_batch=2, global_batch=8, steps=3,
                    warmup_steps=1) for dp in (1, 2)]


def _shape(name: str, layers: int, hidden: int, heads: int, seq_len: int,
           vocab: int) -> ModelSpec:
    return ModelSpec(name=name, layers=layers, hidden=hidden, heads=heads, seq_len=seq_len,
                     vocab=vocab)


def shape_runs() -> list[RunSpec]:
    """Ten runs of model shapes, micro-batches and pipeline depths the presets (and the
    calibration's own shapes) do not have: hidden 48, 96 and 192 (head widths 16, 24 and
    32), micro-batches 1, 2 and 8, pipelines of 2 and 4 stages, full recomputation."""
    h48 = _shape("h48", 4, 48, 3, 64, 1024)
    h96 = _shape("h96", 4, 96, 4, 96, 4096)
    h192 = _shape("h192", 2, 192, 6, 128, 6144)
    rows: list[tuple[ModelSpec, int, int, int, int, int, int, RunRecompute]] = [
        (h48, 1, 1, 1, 8, 32, 10, "none"),
        (h48, 1, 2, 1, 8, 32, 10, "all"),
        (h48, 1, 4, 1, 4, 32, 10, "none"),
        (h96, 1, 1, 1, 2, 16, 8, "none"),
        (h96, 2, 1, 1, 2, 16, 8, "none"),
        (h96, 1, 2, 2, 2, 16, 8, "none"),
        (h96, 1, 4, 1, 2, 16, 8, "first-half"),
        (h192, 1, 1, 2, 1, 8, 8, "none"),
        (h192, 2, 1, 1, 1, 8, 8, "none"),
        (h192, 1, 2, 1, 1, 8, 8, "all"),
    ]
    return [RunSpec(model=m, tp=tp, pp=pp, dp=dp, micro_batch=mb, global_batch=gb,
                    steps=steps, recompute=rc) for m, tp, pp, dp, mb, gb, steps, rc in rows]


RUN_SETS = {"default": default_runs, "shapes": shape_runs, "quick": quick_runs}


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
