"""Run the real trainer for each validation run (``mpiexec -n N fugaku-sim train ...``).

Each run trains on synthetic tokens (:mod:`fugaku_sim.calibrate.synthetic`) into its own
fresh directory ``<runs_dir>/<run slug>`` (``--resume never``), so an older run never
leaks into a new measurement. Runs go one after another: they would disturb each other.
Beside each run, ``machine.json`` records how much of the machine other work took while it
trained (:mod:`fugaku_sim.calibrate.contention`) and the machine's speed as it started
(``speed_probe_s``, :mod:`fugaku_sim.calibrate.probe`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from fugaku_sim.calibrate.contention import MACHINE_FILE, measure_quietly
from fugaku_sim.calibrate.launch import Launcher, python_module, run_mpi
from fugaku_sim.calibrate.probe import run_probe
from fugaku_sim.calibrate.runs import RunSpec, file_slug
from fugaku_sim.calibrate.synthetic import write_synthetic_data
from fugaku_sim.errors import UserError
from fugaku_sim.io import read_json_object, write_json, write_text
from fugaku_sim.spec import ModelSpec, load_model
from fugaku_sim.spec.base import SpecModel
from fugaku_sim.spec.load import dump_yaml


class ModelFile(SpecModel):
    """A model YAML as ``--model PATH`` reads it (its ``model:`` section)."""

    model: ModelSpec


def train_args(run: RunSpec, model: str, data: Path, out: Path) -> list[str]:
    """The ``fugaku-sim`` arguments that train ``run`` of ``model`` (a preset or YAML path,
    :func:`model_ref`)."""
    return ["train", "--model", model, "--data", str(data),
            "--tp", str(run.tp), "--pp", str(run.pp), "--dp", str(run.dp),
            "--micro-batch", str(run.micro_batch), "--global-batch", str(run.global_batch),
            "--steps", str(run.steps), "--out", str(out), "--resume", "never", "--no-progress",
            *run.train_options()]


def train_argv(run: RunSpec, model: str, data: Path, out: Path) -> list[str]:
    """The trainer's command line for ``run`` of ``model`` (after the launcher)."""
    return python_module("fugaku_sim.cli", *train_args(run, model, data, out))


def check_predictable(runs: list[RunSpec]) -> None:
    """Before anything is trained: every run's specs, as the trainer will resolve them, are
    ones the simulator models (else validation would fail after the training).

    Raises:
        UserError: naming the run and the field.
    """
    from fugaku_sim.cli import build_parser
    from fugaku_sim.commands.common import resolve_specs
    from fugaku_sim.spec.job import check_modelled

    with tempfile.TemporaryDirectory() as tmp:  # inline shapes as the trainer reads them
        for i, run in enumerate(runs):
            (where := Path(tmp) / str(i)).mkdir()
            argv = train_args(run, model_ref(run, where), Path("data"), Path("out"))
            try:
                check_modelled(*resolve_specs(build_parser().parse_args(argv)), "sim")
            except UserError as exc:
                raise UserError(f"--runs: {run.label}: {exc}") from None


def model_of(run: RunSpec) -> ModelSpec:
    """The run's model spec (loaded when named)."""
    return run.model if isinstance(run.model, ModelSpec) else load_model(run.model)


def model_ref(run: RunSpec, out: Path) -> str:
    """What ``--model`` gets: the run's preset or path, or its inline shape written as a
    model YAML into the run's directory ``out``."""
    if isinstance(run.model, str):
        return run.model
    path = out / "model.yaml"
    write_text(path, dump_yaml(ModelFile(model=run.model)))
    return str(path)


def prepare_data(runs: list[RunSpec], data_dir: Path) -> dict[str, Path]:
    """A synthetic data directory per model (``<data_dir>/<model name>``): its vocabulary
    (the trainer rejects data with a larger one) and enough tokens for its longest run.

    Raises:
        UserError: two different inline models share a name.
    """
    models: dict[str, ModelSpec] = {}
    for r in runs:
        model = model_of(r)
        if models.setdefault(r.model_name, model) != model:
            raise UserError(f"--runs: two different models are named {r.model_name!r}")
    out = {}
    for name, model in sorted(models.items()):
        tokens = max(r.steps * r.global_batch * (model.seq_len + 1)
                     for r in runs if r.model_name == name)
        out[name] = write_synthetic_data(data_dir / file_slug(name), model.vocab,
                                         2 * tokens + 4096)
    return out


REPEAT_PREFIX = "repeat-"  # pass k > 1 of a run trains into <run dir>/repeat-k


def repeat_dirs(run_dir: Path) -> list[Path]:
    """The directories of a run's passes: the run's own, then its ``repeat-k`` folders that
    hold a finished pass, in pass order."""
    passes = {int(k): d for d in run_dir.glob(REPEAT_PREFIX + "*")
              if (k := d.name.removeprefix(REPEAT_PREFIX)).isdigit() and d.is_dir()
              and (d / "summary.json").is_file()}
    return [run_dir, *(passes[k] for k in sorted(passes))]


def execute_runs(
    runs: list[RunSpec], launcher: Launcher, runs_dir: Path, data_dir: Path,
    timeout_s: float, progress: Callable[[str], None] | None = None, allocator: str = "kept",
    attempts: int = 1, repeats: int = 1,
) -> list[Path]:
    """Train every run ``repeats`` times, in passes over the whole set (every other pass in
    reverse order), so that a run's passes are minutes apart: a shared machine's speed holds
    one level for seconds to minutes (the same 5-s run measured 322 ms and 436 ms a step in
    two rounds, each steady throughout), and the passes sample more than one. Pass 1 trains
    into ``<runs_dir>/<run slug>``, pass k into its ``repeat-k`` folder. Returns the run
    directories (of pass 1).

    Raises:
        UserError: a run the simulator cannot predict, or a run that fails (the message
            names it and the last error line).
    """
    check_predictable(runs)
    data = prepare_data(runs, data_dir)
    dirs = [runs_dir / run.slug for run in runs]
    for k in range(1, repeats + 1):
        order = list(zip(runs, dirs)) if k % 2 else list(zip(runs, dirs))[::-1]
        for run, run_dir in order:
            out = run_dir if k == 1 else run_dir / f"{REPEAT_PREFIX}{k}"
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            write_text(out / "run.json", run.model_dump_json(indent=1) + "\n")
            if progress:
                progress(f"{run.label} on {run.ranks} ranks, {run.steps} steps"
                         + (f" (pass {k} of {repeats})" if repeats > 1 else ""))
            argv = train_argv(run, model_ref(run, out), data[run.model_name], out)
            # trained again while other work took the machine (--resume never: an attempt
            # starts afresh over the last one, which is the one kept)
            train = partial(run_mpi, launcher, run.ranks, argv, timeout_s,
                            f"validate: training run {run.label}", log=out / "launch.log",
                            allocator=allocator)
            probe = run_probe()  # the machine's speed as the run starts (probe.py)
            _, machine = measure_quietly(train, attempts)
            write_json(out / MACHINE_FILE, {**machine, "speed_probe_s": probe})
    return dirs


def warmup_of(run_dir: Path, default: int) -> int:
    """The warm-up steps recorded in ``run.json`` of a run directory (or beside its
    ``summary.json``), else ``default``."""
    if run_dir.name == "summary.json":
        run_dir = run_dir.parent
    try:
        return int(read_json_object(run_dir / "run.json", "run.json")["warmup_steps"])
    except (UserError, KeyError, TypeError, ValueError):  # not a run validate started
        return default
