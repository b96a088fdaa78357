"""Import a Megatron-LM or Megatron-DeepSpeed training log as a measured run.

What the importer reads from rank 0's output (launcher prefixes such as ``[default0]:`` and
timestamps before the text are ignored):

- the arguments block Megatron prints at start-up (``megatron/arguments.py``,
  ``_print_args``)::

      ------------------------ arguments ------------------------
        tensor_model_parallel_size ...................... 4
        ...
      -------------------- end of arguments ---------------------

- the padded vocabulary (``_vocab_size_with_padding``)::

       > padded vocab (size: 50257) with 431 dummy tokens (new size: 50688)

- one line per logged iteration (``training_log``)::

       iteration       10/     100 | consumed samples:        10240 | elapsed time per
       iteration (ms): 2533000.0 | ... | global batch size:  1024 | ... | TFLOPs: 0.86 |

  Megatron-DeepSpeed adds ``TFLOPs:`` (per rank); newer Megatron-LM prints
  ``throughput per GPU (TFLOP/s/GPU): 40.4`` and may print ``(ms): this/mean``.
- memory reports, ``... memory (MB) | allocated: ... | max allocated: 1234.5 | ...`` (GPU,
  per rank) or ``... CPU memory (MB) | used: 20033.7 | ...`` (the node, on CPU-only runs).

An "iteration" is one optimizer step over the global batch, so the step time is the median
of ``elapsed time per iteration`` over the logged lines after ``warmup_steps``; with
``log_interval`` > 1 a line is the mean of its interval, and a line counts only when its
whole interval is past the warm-up.

The log does not say how many nodes ran the job: the caller gives the processes per node
(GPUs per node, or MPI ranks per A64FX node) and the cluster profile.
"""

from __future__ import annotations

import datetime
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fugaku_sim.calibrate.measured import MeasuredRun, unmodelled_features
from fugaku_sim.errors import UserError
from fugaku_sim.spec.load import validation_message

ARGS_START = "-- arguments --"
ARGS_END = "end of arguments"
_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*) \.+ ?(.*)$")
_ITERATION = re.compile(r"iteration\s+(\d+)\s*/\s*\d+\s*\|.*?"
                        r"elapsed time per iteration \(ms\):\s*([0-9.]+)")
_BATCH = re.compile(r"global batch size:\s*(\d+)")
_TFLOPS = re.compile(r"(?:TFLOPs|TFLOP/s/GPU\)):\s*([0-9.]+)")
_PADDED = re.compile(r"padded vocab \(size: \d+\) with \d+ dummy tokens \(new size: (\d+)\)")
_GPU_MEM = re.compile(r"max allocated:\s*([0-9.]+)")
_CPU_MEM = re.compile(r"CPU memory \(MB\) \| used:\s*([0-9.]+)")
_DATE = re.compile(r"datetime:\s*(\d{4}-\d{2}-\d{2})")


@dataclass
class MegatronLog:
    """What one log says: its arguments, logged iterations and memory reports."""

    path: Path
    args: dict[str, str] = field(default_factory=dict)
    padded_vocab: int | None = None
    # (last iteration of the logged interval, ms per iteration, global batch, TFLOP/s per rank)
    iterations: list[tuple[int, float, int | None, float | None]] = field(default_factory=list)
    gpu_mem_MiB: list[float] = field(default_factory=list)
    cpu_mem_MiB: list[float] = field(default_factory=list)
    date: datetime.date | None = None


def parse_megatron_log(path: Path) -> MegatronLog:
    """Read a log into a :class:`MegatronLog`.

    Raises:
        UserError: unreadable file, no arguments block, or two runs' blocks in one log.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the log ({exc.strerror or exc})") from None
    log = MegatronLog(path)
    in_args, args_line = False, 0
    for number, line in enumerate(lines, start=1):
        if ARGS_START in line:
            if args_line:
                raise UserError(f"{path}:{number}: a second arguments block (the first is at "
                                f"line {args_line}); give one run per log")
            in_args, args_line = True, number
        elif in_args and ARGS_END in line:
            in_args = False
        elif in_args:
            if m := _ARG.search(line):
                log.args[m.group(1)] = m.group(2).strip()
        else:
            _scan_line(log, line)
    if not args_line:
        raise UserError(f"{path}: no Megatron arguments block ('{ARGS_START}'): give the "
                        "whole log of rank 0, from start-up")
    return log


def _scan_line(log: MegatronLog, line: str) -> None:
    if m := _ITERATION.search(line):
        batch = _BATCH.search(line)
        tflops = _TFLOPS.search(line)
        log.iterations.append((int(m.group(1)), float(m.group(2)),
                               int(batch.group(1)) if batch else None,
                               float(tflops.group(1)) if tflops else None))
    elif m := _PADDED.search(line):
        log.padded_vocab = int(m.group(1))
    elif m := _GPU_MEM.search(line):
        log.gpu_mem_MiB.append(float(m.group(1)))
    elif m := _CPU_MEM.search(line):
        log.cpu_mem_MiB.append(float(m.group(1)))
    elif log.date is None and (m := _DATE.search(line)):
        log.date = datetime.date.fromisoformat(m.group(1))


class _Args:
    """Typed access to the printed arguments, with errors naming the log and argument."""

    def __init__(self, log: MegatronLog) -> None:
        self.log = log

    def text(self, name: str) -> str | None:
        value = self.log.args.get(name)
        return None if value in (None, "None", "") else value

    def int(self, name: str, default: int | None = None) -> int:
        value = self.text(name)
        if value is None:
            if default is None:
                raise UserError(f"{self.log.path}: argument {name} is missing from the "
                                "arguments block")
            return default
        try:
            number = float(value)  # an int argument with a float default prints as ``1.0``
            if number.is_integer():
                return int(number)
        except ValueError:
            pass
        raise UserError(f"{self.log.path}: argument {name} is {value!r}, not an integer")

    def flag(self, name: str) -> bool:
        return self.text(name) == "True"


def _recompute(a: _Args, layers_per_stage: int) -> str:
    """Megatron's recomputation arguments -> the runs format's ``recompute``."""
    granularity = a.text("recompute_granularity")
    if a.flag("checkpoint_activations") or granularity == "full":
        method = a.text("recompute_method") or a.text("activations_checkpoint_method")
        count = a.int("recompute_num_layers", 1)
        if method == "block" and count < layers_per_stage:
            return "partial"
        return "all"
    if granularity == "selective" or a.flag("recompute_activations"):
        return "selective"
    return "none"


def _unrepresentable(a: _Args, heads: int) -> list[str]:
    """Architecture and parallelism the simulator's GPT-2 model does not describe."""
    reasons = []
    if a.flag("swiglu"):
        reasons.append("SwiGLU MLP (three matrices)")
    groups = a.int("num_query_groups", heads) if a.flag("group_query_attention") else heads
    if groups < heads:
        reasons.append(f"grouped-query attention ({groups} groups)")
    if a.int("num_experts", 0) > 1:
        reasons.append("mixture of experts")
    if a.int("context_parallel_size", 1) > 1:
        reasons.append("context parallelism")
    return reasons


def _step_times(log: MegatronLog, warmup_steps: int) -> tuple[list[float], int]:
    """Per-iteration seconds of the lines past the warm-up, and the steps they cover."""
    interval = _Args(log).int("log_interval", 1)
    timed = [it for it in log.iterations if it[0] - interval + 1 > warmup_steps]
    if not timed:
        raise UserError(f"{log.path}: no logged iteration after the {warmup_steps} warm-up "
                        f"steps ({len(log.iterations)} logged in all)")
    batches = {it[2] for it in timed if it[2] is not None}
    if len(batches) > 1:
        raise UserError(f"{log.path}: the global batch size changes during the timed "
                        f"iterations ({sorted(batches)}); time a run with a fixed batch")
    return [it[1] / 1000.0 for it in timed], interval * len(timed)


def _vocab(log: MegatronLog, a: _Args) -> int:
    if log.padded_vocab is not None:
        return log.padded_vocab
    if (padded := a.text("padded_vocab_size")) is not None:
        return int(padded)
    raise UserError(f"{log.path}: no padded vocabulary (the ' > padded vocab ... (new size: "
                    "N)' line); give the whole log of rank 0")


def _memory(log: MegatronLog) -> dict[str, Any]:
    if log.gpu_mem_MiB:
        return {"mem_MiB": max(log.gpu_mem_MiB), "mem_basis": "rank-peak"}
    if log.cpu_mem_MiB:
        return {"mem_MiB": max(log.cpu_mem_MiB), "mem_basis": "node-used"}
    return {}


def _model_fields(log: MegatronLog, a: _Args) -> dict[str, Any]:
    hidden, layers = a.int("hidden_size"), a.int("num_layers")
    return {"model": f"gpt-{layers}l-{hidden}h", "layers": layers,
            "hidden": hidden, "heads": a.int("num_attention_heads"),
            "ffn_hidden": a.int("ffn_hidden_size", 4 * hidden), "seq_len": a.int("seq_length"),
            "vocab": _vocab(log, a),
            "tied_embeddings": not a.flag("untie_embeddings_and_output_weights")}


def _layout_fields(log: MegatronLog, a: _Args, processes_per_node: int) -> dict[str, Any]:
    tp, pp = a.int("tensor_model_parallel_size"), a.int("pipeline_model_parallel_size", 1)
    world, cp, layers = a.int("world_size"), a.int("context_parallel_size", 1), a.int("num_layers")
    if world % (tp * pp * cp) or world % processes_per_node:
        raise UserError(f"{log.path}: world_size {world} is not a multiple of tp x pp x cp "
                        f"({tp * pp * cp}) and of {processes_per_node} processes per node")
    virtual = a.int("virtual_pipeline_model_parallel_size", 1)
    if (per_chunk := a.int("num_layers_per_virtual_pipeline_stage", 0)) > 0:
        virtual = layers // (pp * per_chunk)
    batches = [it[2] for it in log.iterations if it[2] is not None]
    deepspeed = a.flag("deepspeed")
    return {
        "tp": tp, "pp": pp, "dp": world // (tp * pp * cp),
        "schedule": "interleaved" if virtual > 1 else "1f1b", "virtual_stages": virtual,
        "micro_batch": a.int("micro_batch_size"),
        "global_batch": batches[-1] if batches else a.int("global_batch_size"),
        "recompute": _recompute(a, layers // pp),
        "precision": "bf16" if a.flag("bf16") else "fp16" if a.flag("fp16") else "fp32",
        "zero_stage": a.int("zero_stage", 0) if deepspeed else int(a.flag("use_distributed_optimizer")),
        "overlap_grad_reduce": a.flag("overlap_grad_reduce") or a.text("DDP_impl") == "torch",
        "sequence_parallel": a.flag("sequence_parallel"),
        "nodes": world // processes_per_node, "processes_per_node": processes_per_node,
        "framework": "deepspeed" if deepspeed else "megatron",
    }


def _timing_fields(log: MegatronLog, warmup_steps: int) -> dict[str, Any]:
    times, steps = _step_times(log, warmup_steps)
    tflops = [it[3] for it in log.iterations[-len(times):] if it[3] is not None]
    return {"step_time_s": statistics.median(times), "time_quality": "measured",
            "steps_timed": steps,
            "reported_tflops_per_rank": statistics.median(tflops) if tflops else None,
            **_memory(log), "date": log.date,
            "source": f"{log.path.name}: Megatron log, median of elapsed time per iteration "
                      f"over {len(times)} logged lines after {warmup_steps} warm-up steps"}


def run_from_megatron_log(
    path: Path, *, cluster: str, processes_per_node: int, warmup_steps: int = 2,
    run_id: str | None = None, clock_GHz: float | None = None,
    conditions: dict[str, str] | None = None,
) -> MeasuredRun:
    """A measured run (one row of a runs file) from a Megatron training log.

    Settings the simulator does not model (partial recomputation, context parallelism,
    SwiGLU, grouped-query attention, experts) make the row ``representable`` false with the
    reason.

    Raises:
        UserError: the log lacks what a row needs (arguments, vocabulary, timed
            iterations), or its world size is not a multiple of ``processes_per_node``.
    """
    log = parse_megatron_log(path)
    a = _Args(log)
    ddp = a.text("DDP_impl")
    row: dict[str, Any] = {
        "id": run_id or path.stem, "cluster": cluster, "clock_GHz": clock_GHz,
        **_model_fields(log, a), **_layout_fields(log, a, processes_per_node),
        **_timing_fields(log, warmup_steps),
        "conditions": {**({"ddp_impl": ddp.lower()} if ddp else {}), **(conditions or {})},
    }
    reasons = [*_unrepresentable(a, row["heads"]),
               *(what for _, what in unmodelled_features(row["recompute"]))]
    if reasons:
        row |= {"representable": False, "reason": "; ".join(reasons)}
    try:
        return MeasuredRun.model_validate(row)
    except ValidationError as exc:
        raise UserError(validation_message(exc, str(path), "run")) from None
