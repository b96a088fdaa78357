"""The set of short training runs that validation measures and predicts.

A run is a model preset, a layout and batch settings. ``--runs`` takes a set name
(``default``, ``quick``) or a YAML file holding a list of runs::

    - {model: gpt-tiny, tp: 2, pp: 2, dp: 1, micro_batch: 4, global_batch: 16, steps: 8}

The default set covers data, tensor and pipeline parallelism and their mixes, 1 to 4 ranks
(4 ranks oversubscribe this 2-core machine) and two model sizes. Every run of one model has
the same global batch, so their step times compare layouts at equal work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from fugaku_sim.errors import UserError
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.load import read_yaml, validate_section


class RunSpec(SpecModel):
    """One measured run: model preset, layout, batch and how many steps to time."""

    model: str = Field(min_length=1)
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    micro_batch: int = Field(gt=0)
    global_batch: int = Field(gt=0)
    steps: int = Field(default=8, gt=0, description="optimizer steps, warm-up included")
    warmup_steps: int = Field(default=2, ge=0, description="steps not timed")
    name: str | None = None

    @property
    def ranks(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def label(self) -> str:
        """``gpt-tiny tp2 pp1 dp2 mb4`` unless a name is given."""
        return self.name or (f"{self.model} tp{self.tp} pp{self.pp} dp{self.dp} "
                             f"mb{self.micro_batch}")

    @property
    def slug(self) -> str:
        """File-name form of the label."""
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in self.label)


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


RUN_SETS = {"default": default_runs, "quick": quick_runs}


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
