"""Options shared by the verbs that take a job: cluster, model, training settings, layout.

Where each setting comes from, later layers overriding single fields of earlier ones:

1. the model preset's reference training settings and layout (Fugaku-LLM's);
2. ``--layout-from``: a layout record (:mod:`fugaku_sim.spec.record`) replaces the preset's
   layout, and its training settings, when it has them, replace the preset's;
3. ``--train-config``: a TrainSpec mapping (YAML);
4. single options (``--tp``, ``--micro-batch`` ...).

A layer that sets ``steps`` drops the ``tokens`` of the layers before it, and the other way
round: a run is given one or the other. New tensor, pipeline or data degrees drop the job
shape of the layers before (it was for another split) unless ``--job-shape`` is given too.
The result is validated as a whole (``make_job``), so every error names the field to fix.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from fugaku_sim.errors import SpecError
from fugaku_sim.meta import Source, argument_values, build_meta
from fugaku_sim.parallel.groups import RANK_ORDERS
from fugaku_sim.parallel.placement import Strategy
from fugaku_sim.parallel.schedule import ScheduleKind
from fugaku_sim.spec import (
    Job,
    Layout,
    ModelSpec,
    TrainSpec,
    load_cluster,
    load_model_preset,
    make_job,
    read_yaml,
    validate_section,
)
from fugaku_sim.spec.layout import RequestedAllocation
from fugaku_sim.spec.limits import MAX_LAYERS, MAX_MACHINE_NODES
from fugaku_sim.spec.record import read_layout_record
from fugaku_sim.spec.stack import (
    DEFAULT_STACK,
    StackSpec,
    load_stack,
    parse_scale,
    resolve_stack_path,
    scaled,
)
from fugaku_sim.spec.train import (
    AttentionKind,
    OptimizerKind,
    RecomputeMode,
    TrainPrecision,
    ZeroStage,
)

# command-line option -> (section, field)
_TRAIN_OPTIONS = {
    "global_batch": "global_batch",
    "micro_batch": "micro_batch",
    "tokens": "tokens",
    "steps": "steps",
    "precision": "precision",
    "optimizer": "optimizer",
    "zero": "zero_stage",
    "recompute": "recompute",
    "overlap_grad_reduce": "overlap_grad_reduce",
    "attention": "attention",
    "lr": "lr",
    "min_lr": "min_lr",
    "warmup_steps": "warmup_steps",
    "weight_decay": "weight_decay",
    "grad_clip": "grad_clip",
    "grad_bucket_mb": "grad_bucket_MB",
    "seed": "seed",
}
_LAYOUT_OPTIONS = {
    "tp": "tp",
    "pp": "pp",
    "dp": "dp",
    "schedule": "schedule",
    "virtual_stages": "virtual_stages",
    "rank_order": "rank_order",
    "placement": "placement",
    "job_shape": "job_shape",
    "allocation": "allocation",
    "processes_per_node": "processes_per_node",
    "sequence_parallel": "sequence_parallel",
}


def whole_number(text: str, least: int, most: int | None = None) -> int:
    """An argparse value: a whole number in [least, most].

    Raises:
        argparse.ArgumentTypeError: not a whole number, or out of range (argparse prints one
            line and exits 2).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most:,}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse value: a whole number >= 1."""
    return whole_number(text, 1)


def count(text: str) -> int:
    """An argparse value: a whole number >= 0."""
    return whole_number(text, 0)


def finite_number(text: str) -> float:
    """An argparse value: a finite number (``inf`` and ``nan`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_number(text: str) -> float:
    """An argparse value: a finite number > 0."""
    value = finite_number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def parse_shape(text: str) -> list[int]:
    """``48x6x48`` -> [48, 6, 48]."""
    try:
        shape = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 48x6x48") from None
    if any(v <= 0 for v in shape):
        raise argparse.ArgumentTypeError(f"{text!r}: extents must be positive")
    if len(shape) > 6 or any(v > MAX_MACHINE_NODES for v in shape):  # Tofu's 6-D at most
        raise argparse.ArgumentTypeError(f"{text!r}: at most 6 axes of at most "
                                         f"{MAX_MACHINE_NODES:,} nodes")
    return shape


def parse_stages(text: str) -> list[int]:
    """``0-3`` or ``0,2,5`` -> stage list (stage numbers below :data:`MAX_LAYERS`: a pipeline
    has no more stages than layers, so a longer range is a typo, not a list to build)."""
    stages: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            first, last = int(lo), int(hi or lo)
            if not 0 <= first <= last < MAX_LAYERS:
                raise argparse.ArgumentTypeError(
                    f"{part!r}: stages run from 0 up to {MAX_LAYERS - 1}, low to high")
            stages += range(first, last + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a stage list like 0-3 or 0,2") from None
    return stages


def add_model_arguments(parser: argparse.ArgumentParser, cluster: bool = True) -> None:
    if cluster:
        parser.add_argument("--cluster", default="fugaku", help="preset name or YAML path")
        add_stack_argument(parser)
    parser.add_argument("--model", default="fugaku-llm-13b", help="preset name or YAML path")


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", metavar="NAME|YAML",
        help="software stack: a name under clusters/stacks/ or a YAML path (default: ideal, "
        "the hardware as the simulator prices it)")
    parser.add_argument(
        "--stack-scale", action="append", default=[], metavar="PARAMETER=FACTOR",
        help="what-if: multiply a stack parameter (and its interval) by FACTOR, e.g. "
        "gemm_efficiency_scale=6; repeatable")


def stack_from_args(args: argparse.Namespace) -> StackSpec:
    """The stack of --stack with the --stack-scale factors applied.

    Raises:
        SpecError: unknown stack, bad file, or a malformed factor.
    """
    stack = load_stack(getattr(args, "stack", None))
    factors = dict(parse_scale(text) for text in getattr(args, "stack_scale", None) or [])
    return scaled(stack, factors)


def add_interval_arguments(parser: argparse.ArgumentParser, default: bool = True) -> None:
    """--intervals / --no-intervals and --draws (p10/p50/p90 of step time and time to train
    from the profile's assumed ranges and the stack's fitted intervals)."""
    parser.add_argument(
        "--intervals", action=argparse.BooleanOptionalAction, default=default,
        help="p10/p50/p90 of step time and time to train from the profile's assumed ranges "
        "and the stack's fitted parameters (fugaku_sim/sim/intervals.py)")
    parser.add_argument("--draws", type=int, default=256,
                        help="joint draws of the uncertain inputs (default 256)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training settings (override the model preset's)")
    g.add_argument("--train-config", metavar="YAML", help="a TrainSpec mapping to start from")
    g.add_argument("--global-batch", type=int, help="sequences per step")
    g.add_argument("--micro-batch", type=int, help="sequences per micro-batch")
    g.add_argument("--tokens", type=float, help="tokens to train on (e.g. 380e9)")
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument("--precision", choices=get_args(TrainPrecision))
    g.add_argument("--optimizer", choices=get_args(OptimizerKind))
    g.add_argument("--zero", type=int, choices=get_args(ZeroStage), help="ZeRO stage")
    g.add_argument("--recompute", choices=get_args(RecomputeMode))
    g.add_argument("--recompute-stages", type=parse_stages, metavar="0-3")
    g.add_argument("--overlap-grad-reduce", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--attention", choices=get_args(AttentionKind),
                   help="materialized scores, or flash attention (fused, scores kept on chip)")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine")
    g.add_argument("--warmup-steps", type=int, help="linear warm-up steps")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--grad-clip", type=float, help="global gradient norm limit (0: off)")
    g.add_argument("--grad-bucket-mb", type=float, help="data-parallel bucket size, MB")
    g.add_argument("--seed", type=int)


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("layout (overrides the model preset's)")
    g.add_argument(
        "--layout-from", metavar="JSON",
        help="start from a layout record: the layout (and training settings) of a predict "
        "JSON object, of the best entry of a plan's JSON, or of `workflow pick-layout`",
    )
    g.add_argument("--tp", type=int, help="tensor-parallel degree")
    g.add_argument("--pp", type=int, help="pipeline-parallel degree")
    g.add_argument("--dp", type=int, help="data-parallel degree")
    g.add_argument("--schedule", choices=get_args(ScheduleKind))
    g.add_argument("--virtual-stages", type=int, help="model chunks per stage (interleaved)")
    g.add_argument("--rank-order", choices=RANK_ORDERS, help="axes fastest first")
    g.add_argument("--placement", choices=get_args(Strategy))
    g.add_argument("--job-shape", type=parse_shape, metavar="AxBxC",
                   help="virtual job shape (pjsub node=AxBxC), or a node count")
    g.add_argument("--allocation", choices=get_args(RequestedAllocation),
                   help="torus: a block of whole units; noncont: nodes wherever free (small "
                   "jobs); default: a torus shape if one fits, else what the machine allows")
    g.add_argument("--processes-per-node", type=int,
                   help="MPI processes per node (default: the cluster profile's)")
    g.add_argument("--sequence-parallel", action=argparse.BooleanOptionalAction, default=None,
                   help="shard norms, dropouts and residuals along the sequence over tp")


def add_job_arguments(parser: argparse.ArgumentParser, cluster: bool = True) -> None:
    """--cluster, --model, the training settings and the layout."""
    add_model_arguments(parser, cluster=cluster)
    add_train_arguments(parser)
    add_layout_arguments(parser)


def _overrides(args: argparse.Namespace, options: dict[str, str]) -> dict[str, Any]:
    out = {}
    for option, field in options.items():
        value = getattr(args, option, None)
        if value is not None:
            out[field] = value
    return out


def apply_train_layer(train: dict[str, Any], layer: dict[str, Any]) -> None:
    """Override ``train`` with ``layer``; a layer's steps or tokens replaces both."""
    if {"steps", "tokens"} & {k for k, v in layer.items() if v is not None}:
        train.pop("steps", None)
        train.pop("tokens", None)
    train.update(layer)


def resolve_specs(args: argparse.Namespace) -> tuple[ModelSpec, TrainSpec, Layout]:
    """Model preset, --layout-from, --train-config and single options -> specs (the layers
    of the module docstring).

    Raises:
        UserError: naming the field (``train.global_batch``, ``layout.tp`` ...) or the file.
    """
    preset = load_model_preset(args.model)
    train: dict[str, Any] = dict(preset.train)
    layout = dict(preset.layout)
    if getattr(args, "layout_from", None):
        record = read_layout_record(args.layout_from, f"--layout-from {args.layout_from}")
        layout = record.layout.model_dump(mode="json")
        if record.train is not None:
            train = record.train.model_dump(mode="json", exclude_none=True)
    if getattr(args, "train_config", None):
        apply_train_layer(train, read_yaml(Path(args.train_config)))
    apply_train_layer(train, _overrides(args, _TRAIN_OPTIONS))
    if getattr(args, "recompute", None) is not None and args.recompute_stages is None:
        train.pop("recompute_stages", None)  # a new mode: the earlier layers' list was for another
    if getattr(args, "recompute_stages", None) is not None:
        # a stage list means full recomputation there: with --recompute selective, selective
        # on the other stages; otherwise recompute becomes ``stages``
        train["recompute_stages"] = args.recompute_stages
        if args.recompute is None and train.get("recompute") != "selective":
            train["recompute"] = "stages"
    if train.get("recompute") not in ("stages", "selective"):
        train.pop("recompute_stages", None)
    explicit = _overrides(args, _LAYOUT_OPTIONS)
    if {"tp", "pp", "dp"} & explicit.keys():
        # a new parallel split: the earlier job shape no longer applies unless given again
        layout.pop("job_shape", None)
    layout.update(explicit)
    if "global_batch" not in train:
        raise SpecError(f"train.global_batch: not set by model {args.model!r}; pass --global-batch")
    train_spec = validate_section(TrainSpec, train, "", "train")
    layout_spec = validate_section(Layout, layout, "", "layout")
    return preset.model, train_spec, layout_spec


def job_from_args(args: argparse.Namespace) -> Job:
    """Build and validate the :class:`Job` the options describe."""
    cluster = load_cluster(args.cluster)
    model, train, layout = resolve_specs(args)
    return make_job(cluster, model, train, layout, stack_from_args(args))


def spec_sources(args: argparse.Namespace) -> list[Source]:
    """The spec files the options name, for the ``meta`` block: the cluster profile, the
    model preset and the software stack (a verb's further files are added by the verb)."""
    from fugaku_sim.spec.load import resolve_cluster_path

    sources: list[Source] = []
    if getattr(args, "cluster", None):
        sources.append(("cluster", args.cluster, resolve_cluster_path(args.cluster)))
    if getattr(args, "model", None):
        sources.append(("model", args.model, Path(load_model_preset(args.model).source)))
    if hasattr(args, "stack"):  # the verb takes --stack (what-if factors are in the arguments)
        ref = args.stack or DEFAULT_STACK
        sources.append(("stack", ref, resolve_stack_path(ref)))
    return sources


def command_meta(args: argparse.Namespace, *, record: dict[str, Any] | None = None,
                 sources: Sequence[Source] = ()) -> dict[str, Any]:
    """The ``meta`` block (:mod:`fugaku_sim.meta`) of a verb's output: the spec files of
    :func:`spec_sources` and ``sources``, the parsed arguments and, for a verb about one job,
    its layout ``record``."""
    inputs: dict[str, Any] = {"arguments": argument_values(args)}
    if record is not None:
        inputs["layout_record"] = record
    return build_meta([*spec_sources(args), *sources], inputs)


def print_json(obj: Any, meta: dict[str, Any], key: str | None = None) -> None:
    """Print a verb's ``--json`` output on stdout, always one JSON object with ``meta``
    (:func:`command_meta`): beside an object's keys, or ``{"meta": ..., key: [...]}`` for a
    list. Nothing else may go to stdout with ``--json`` (tables and progress go to stderr)."""
    if isinstance(obj, dict):
        doc = {**obj, "meta": meta}
    else:
        if key is None:
            raise TypeError("print_json: a list needs the key it goes under")
        doc = {"meta": meta, key: obj}
    print(json.dumps(doc, indent=2, sort_keys=False))


def add_launch_arguments(parser: argparse.ArgumentParser, timeout_s: float, per: str) -> None:
    """--launcher, --allocator, --timeout and --attempts, shared by ``calibrate`` and
    ``validate`` (:mod:`fugaku_sim.calibrate.launch`, :mod:`fugaku_sim.calibrate.contention`)."""
    from fugaku_sim.calibrate.contention import QUIET_SHARE
    from fugaku_sim.calibrate.launch import ALLOCATORS

    parser.add_argument("--launcher", help="MPI launcher template with {ranks}")
    parser.add_argument("--allocator", choices=list(ALLOCATORS), default="kept",
                        help="glibc allocator of every rank: kept (freed memory reused, the "
                             "default) or default (returned to the OS, page faults)")
    parser.add_argument("--timeout", type=positive_number, default=timeout_s,
                        help=f"seconds {per}")
    parser.add_argument("--attempts", type=positive_int, default=3,
                        help="measure again, once the machine has settled, while other work "
                             f"takes more than {QUIET_SHARE * 100:.0f}%% of the machine: this many "
                             "measurements at most, the last one kept (default 3; 1: never)")
