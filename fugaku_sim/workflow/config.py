"""The workflow's configuration: one pydantic model, the source of the JSON schema.

``workflows/config/schema.json`` is generated from :class:`WorkflowConfig`
(``python -m fugaku_sim.workflow.config --write-schema``); a test fails when the two drift.
The Snakefile validates the config before any job runs (:func:`check_workflow_config`):
each config file through the spec's strict YAML loader, the config against the schema, then
against the model itself (cross-field rules such as "the layout uses as many ranks as the run
has"), the training job's own rules, and every preset or file the config names.

What the workflow cannot guard: Snakemake reads ``--configfile`` and ``--config`` itself,
before the Snakefile runs, and merges mappings by copying them
(``snakemake/settings/types.py``, ``ConfigSettings._get_overwrite_config`` calling
``snakemake/utils.py``'s ``update_config``): a YAML alias bomb of mappings there is expanded
in full before any of this code runs. A bomb of lists is not copied, so it reaches
:func:`check_against_schema`, which refuses it before walking it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, create_model, model_validator

from fugaku_sim.data.config import DataConfig
from fugaku_sim.errors import SpecError, UserError
from fugaku_sim.io import load_json
from fugaku_sim.spec.base import SpecModel, constrained
from fugaku_sim.spec.layout import Layout
from fugaku_sim.spec.limits import MAX_GLOBAL_BATCH, MAX_MACHINE_NODES, MAX_TOKENS
from fugaku_sim.spec.load import validation_message
from fugaku_sim.spec.stack import FITTABLE
from fugaku_sim.spec.train import TrainSpec

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflows" / "config" / "schema.json"


# Every TrainSpec field, optional: the workflow overrides only what it names, the rest comes
# from the model preset. Generated, so the schema follows TrainSpec without a second copy.
TrainOverrides = create_model(  # type: ignore[call-overload]
    "TrainOverrides",
    __base__=SpecModel,
    **{
        # the field's constraints (gt=0, ...) kept on the value, None allowed beside it
        name: (
            constrained(field.annotation, field.metadata) | None,
            Field(default=None, description=field.description),
        )
        for name, field in TrainSpec.model_fields.items()
    },
)


class TrainSection(SpecModel):
    """The real training run."""

    model: str = Field(default="gpt-tiny", description="model preset name or YAML path")
    cluster: str = Field(default="local-calibrated", description="cluster profile the run is planned on")
    stack: str = Field(default="ideal", description="software stack the run is planned and "
                       "predicted on: a name under clusters/stacks/ or a YAML path")
    ranks: int = Field(default=2, gt=0, description="MPI processes")
    layout: Literal["auto"] | Layout = Field(
        default="auto", description="'auto' takes the layout the plan ranks fastest"
    )
    settings: TrainOverrides = Field(default_factory=TrainOverrides)  # type: ignore[valid-type]
    checkpoint_every: int = Field(default=50, gt=0, description="steps between checkpoints")
    eval_every: int = Field(default=50, gt=0, description="steps between validation losses")
    mpi_launcher: str = Field(
        default="mpiexec", pattern=r"\S",
        description="'mpiexec' (the environment's), 'srun', or a command"
    )

    @model_validator(mode="after")
    def _ranks_match(self) -> TrainSection:
        if isinstance(self.layout, Layout) and self.layout.world != self.ranks:
            raise ValueError(
                f"layout: tp x pp x dp = {self.layout.world} but train.ranks is {self.ranks}"
            )
        return self


class EvaluateSection(SpecModel):
    max_docs: int = Field(default=200, gt=0, description="held-out documents per domain")
    seed: int = Field(default=0, ge=0)


class PlanSection(SpecModel):
    """The capacity plan for the reference job (Fugaku-LLM on 13,824 Fugaku nodes)."""

    cluster: str = "fugaku"
    stack: str = Field(default="deepspeedfugaku-2023", description="software stack the "
                       "reference job is planned and predicted on (fitted from measured runs)")
    whatif_scale: dict[str, float] = Field(
        default_factory=lambda: {"gemm_efficiency_scale": 6.0,
                                 "collective_efficiency.allreduce": 3.0,
                                 "collective_efficiency.p2p": 3.0},
        description="the what-if stack of the reference prediction: factors on the stack's "
        "parameters (default: the May 2024 announcement, dense matrix multiplication 6x and "
        "communication 3x faster)")
    model: str = "fugaku-llm-13b"
    nodes: int = Field(default=13_824, gt=0, le=MAX_MACHINE_NODES)
    global_batch: int = Field(default=2016, gt=0, le=MAX_GLOBAL_BATCH)
    tokens: float = Field(default=380e9, gt=0, le=MAX_TOKENS)
    top: int = Field(default=20, gt=0)

    @model_validator(mode="after")
    def _whatif(self) -> PlanSection:
        for path, factor in self.whatif_scale.items():
            if path not in FITTABLE:
                raise ValueError(f"whatif_scale.{path}: not a stack parameter "
                                 f"({', '.join(FITTABLE)})")
            if not factor > 0:
                raise ValueError(f"whatif_scale.{path}: must be positive, got {factor}")
        return self

    def whatif_options(self) -> str:
        """The what-if as ``--stack-scale P=F`` options."""
        return " ".join(f"--stack-scale {p}={f:g}" for p, f in self.whatif_scale.items())


class CompareSection(SpecModel):
    """Predicted vs measured: calibrate this machine, run a few short layouts, compare."""

    calibrate_quick: bool = Field(default=True, description="seconds-long microbenchmarks")
    runs: str = Field(
        default="default", description="run set for validate: default, quick, or a YAML path"
    )
    profile: Literal["train", "measured"] = Field(
        default="measured", description="profile the training run is compared on: train.cluster, "
        "or the one `calibrate` measures on this machine in the same build")
    stack_free: str = Field(
        default="gemm_efficiency_scale,nongemm_efficiency",
        description="parameters of the local stack fitted to the validate runs (the default "
        "runs do not pin down kernel_overhead_us beside them: calibrate refuses it)")

    @model_validator(mode="after")
    def _free(self) -> CompareSection:
        bad = [p for p in self.stack_free.split(",") if p.strip() not in FITTABLE]
        if bad:
            raise ValueError(f"stack_free: {bad[0]!r} is not a stack parameter")
        return self


class WorkflowConfig(SpecModel):
    """Everything the Snakefile needs; defaults give the built-in build."""

    # a folder and a file name (results/release/<run_name>.tar.gz and the temporary names
    # beside it): within the 255 bytes of a file name
    run_name: str = Field(default="fugaku-sim-tiny", max_length=200,
                          pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainSection = Field(default_factory=TrainSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    plan: PlanSection = Field(default_factory=PlanSection)
    compare: CompareSection = Field(default_factory=CompareSection)


def fixed_layout(train: TrainSection, processes_per_node: int) -> dict[str, Any]:
    """The fixed layout as the run uses it, with the run's ``processes_per_node``
    (:func:`fugaku_sim.workflow.allocation.run_allocation`) filled in: the record
    ``workflow write --section layout`` writes. Empty for ``auto`` (the plan decides)."""
    if not isinstance(train.layout, Layout):
        return {}
    update = {"processes_per_node": processes_per_node}
    return train.layout.model_copy(update=update).model_dump(mode="json")


def load_workflow_config(data: dict[str, Any], source: str = "config") -> WorkflowConfig:
    """Validate a config mapping (what Snakemake loaded).

    Raises:
        SpecError: one line naming the dotted field path.
    """
    try:
        return WorkflowConfig.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, source)) from None


def check_config_files(paths: list[str]) -> None:
    """Read each config file again through the spec's YAML loader: Snakemake's own loader
    keeps the last of two equal keys silently, takes control characters and any size.

    Raises:
        SpecError: one line naming the file (a duplicate key, an alias bomb, ...).
    """
    from fugaku_sim.io import read_text
    from fugaku_sim.spec.load import MAX_YAML_BYTES, parse_yaml

    for path in paths:
        try:
            text = read_text(path, str(path), kind="YAML file", max_bytes=MAX_YAML_BYTES)
        except UserError as exc:
            raise SpecError(str(exc)) from None
        parse_yaml(text, str(path))


def check_run(cfg: WorkflowConfig) -> None:
    """The cross-field rules the training job would apply, checked before any job runs (the
    data stage takes minutes; a batch that does not divide should not wait for it): the
    model preset's training settings with ``train.settings`` over them, as ``train`` reads
    them, with a step count; the fixed layout against the model and batch (as ``check``);
    the tokenizer's vocabulary against the model's.

    Raises:
        SpecError: one line naming the field (``train.settings.lr``, ``layout.tp``, ...).
    """
    from fugaku_sim.commands.common import apply_train_layer
    from fugaku_sim.spec import load_model_preset, validate_section
    from fugaku_sim.train.run_plan import (
        check_layout,
        check_tokenizer_fits,
        check_trainable,
        total_steps,
    )

    try:
        preset = load_model_preset(cfg.train.model)
    except UserError as exc:  # the loader names its option: name the key
        raise SpecError(f"train.model: {str(exc).removeprefix('--model: ')}") from None
    train = dict(preset.train)
    settings = cfg.train.settings.model_dump(mode="json")  # type: ignore[attr-defined]
    apply_train_layer(train, {k: v for k, v in settings.items() if v is not None})
    if "global_batch" not in train:
        raise SpecError(f"train.settings.global_batch: not set by model {cfg.train.model!r}")
    spec = validate_section(TrainSpec, train, "", "train.settings")
    try:
        if isinstance(cfg.train.layout, Layout):
            check_layout(preset.model, spec, cfg.train.layout, cfg.train.ranks)
        elif any(s >= preset.model.layers for s in spec.recompute_stages):
            raise UserError(f"train.recompute_stages: stage {max(spec.recompute_stages)} "
                            f"exists in no layout of {preset.model.layers} layers")
        check_trainable(preset.model, spec)
        total_steps(preset.model, spec)
        check_tokenizer_fits(cfg.data.tokenizer.vocab_size, preset.model,
                             "data.tokenizer.vocab_size")
    except UserError as exc:  # the rules name spec fields: name the config's keys
        message = str(exc)
        for spec_key, config_key in (("layout.", "train.layout."), ("train.", "train.settings.")):
            if message.startswith(spec_key):
                message = config_key + message.removeprefix(spec_key)
                break
        raise SpecError(f"{message} (train.model {cfg.train.model})") from None


def check_against_schema(data: dict[str, Any], source: str = "config") -> None:
    """Validate a config mapping against ``workflows/config/schema.json`` (JSON Schema).

    Raises:
        SpecError: one line naming the dotted path of the most relevant error, or a config
            too large once its aliases are followed.
    """
    import jsonschema

    from fugaku_sim.spec.load import check_loaded_size

    check_loaded_size(data, source)  # before the schema check walks every alias
    schema = load_json(SCHEMA_PATH, str(SCHEMA_PATH), "reinstall fugaku-sim")
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    parts = [str(p) for p in error.absolute_path]
    message = error.message
    shown = repr(error.instance)
    if len(shown) > 60 and message.startswith(shown):  # keep what is wrong, not all of the value
        message = f"{shown[:40]}...{shown[-1]}{message[len(shown):]}"
    message = message if len(message) < 200 else message[:197] + "..."
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        # name the misspelt key itself, as the pydantic check does
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed)
        if unknown:
            parts.append(str(unknown[0]))
            message = "unknown key (misspelt?)"
    path = ".".join(parts) or "(top level)"
    head = f"{source}: " if source else ""
    raise SpecError(f"{head}{path}: {message}")


def check_references(cfg: WorkflowConfig) -> None:
    """Every preset or file the config names loads (cluster, model and stack of the run and
    of the plan, the compare run set), and the run's ranks fit its cluster: what a job would
    find only when it runs, hours into the build.

    Raises:
        SpecError: ``train.cluster: no cluster preset 'x'; known: ...`` and the like.
    """
    from fugaku_sim.calibrate.runs import load_runs
    from fugaku_sim.spec import load_cluster, load_model
    from fugaku_sim.spec.stack import load_stack
    from fugaku_sim.workflow.allocation import run_allocation

    refs = [("train.cluster", load_cluster, cfg.train.cluster, "--cluster"),
            ("train.model", load_model, cfg.train.model, "--model"),
            ("train.stack", load_stack, cfg.train.stack, "--stack"),
            ("plan.cluster", load_cluster, cfg.plan.cluster, "--cluster"),
            ("plan.model", load_model, cfg.plan.model, "--model"),
            ("plan.stack", load_stack, cfg.plan.stack, "--stack"),
            ("compare.runs", load_runs, cfg.compare.runs, "--runs")]
    for key, load, ref, option in refs:
        try:
            load(ref)
        except UserError as exc:  # the loaders name their command-line option: name the key
            raise SpecError(f"{key}: {str(exc).removeprefix(f'{option}: ')}") from None
    plan_cluster = load_cluster(cfg.plan.cluster)
    if cfg.plan.nodes > plan_cluster.allocation.max_nodes:
        raise SpecError(f"plan.nodes: {cfg.plan.nodes} nodes, but {plan_cluster.name} runs "
                        f"jobs of at most {plan_cluster.allocation.max_nodes}")
    cluster = load_cluster(cfg.train.cluster)
    layout = cfg.train.layout
    per_node = layout.processes_per_node if isinstance(layout, Layout) else None
    nodes = run_allocation(cluster, cfg.train.ranks, per_node).nodes
    if nodes > cluster.allocation.max_nodes:
        raise SpecError(f"train.ranks: {cfg.train.ranks} ranks take {nodes} nodes of "
                        f"{cluster.name}, which runs jobs of at most "
                        f"{cluster.allocation.max_nodes}")


def check_workflow_config(config: dict[str, Any], configfiles: list[str]) -> WorkflowConfig:
    """What the Snakefile checks before any job runs: each config file through the spec's
    strict YAML loader (Snakemake's own keeps the last of two equal keys), the config against
    the schema and the model, the training job's cross-field rules (:func:`check_run`) and
    every preset or file it names (:func:`check_references`).

    Raises:
        SpecError: one line naming the file or the dotted key.
    """
    check_config_files(configfiles)
    check_against_schema(config, "")
    cfg = load_workflow_config(config, "")
    check_run(cfg)
    check_references(cfg)
    return cfg


@contextlib.contextmanager
def stop_on_config_error() -> Iterator[None]:
    """Inside the Snakefile: a config error stops Snakemake before any job runs, with one
    line naming what to fix and no traceback (exit status 1, Snakemake's for a bad
    workflow)."""
    try:
        yield
    except UserError as exc:
        print(f"fugaku-sim workflow: config error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def workflow_schema() -> dict[str, Any]:
    """The JSON schema of :class:`WorkflowConfig`."""
    schema = WorkflowConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check the workflow config schema.")
    parser.add_argument("--write-schema", action="store_true")
    args = parser.parse_args(argv)
    text = json.dumps(workflow_schema(), indent=2, sort_keys=True) + "\n"
    if args.write_schema:
        SCHEMA_PATH.write_text(text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
