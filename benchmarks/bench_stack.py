"""Benchmarks of the software-stack work; prints one JSON object.

    .venv/bin/python benchmarks/bench_stack.py

- fit over 100 runs <= 30 s: the Fugaku 2023 runs file with every row that has a time and
  builds a job (first steps, estimates and the rows left out included: 92 runs, the shipped
  stack's free parameters and condition factors) plus the 13 SC21 rows (a second fit on the
  DGX A100 profile); each fit's leave-one-out included;
- predict with intervals <= 2 s: the Fugaku-LLM job on the fitted stack (the fast predict
  and its p10/p50/p90, 256 draws), after the process's imports;
- plan with intervals on 13,824 nodes <= 60 s: every layout, intervals for the best three.
Wall-clock seconds and the CPU seconds of this process (the machine may be shared: report the
load average, printed too).

``cli`` times the same three as a user types them, each a fresh ``fugaku-sim`` process
(imports included) whose ``--json`` output is parsed: ``calibrate --from-runs`` with the
arguments the shipped Fugaku stack records (written to a temporary file), ``predict`` and
``plan --nodes 13824`` of the Fugaku-LLM job on that stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fugaku_sim.calibrate.fromruns import read_inputs, run_fit  # noqa: E402
from fugaku_sim.calibrate.stackfit import parse_condition_factor  # noqa: E402
from fugaku_sim.sim.intervals import predict_intervals  # noqa: E402
from fugaku_sim.sim.plan import plan_layouts  # noqa: E402
from fugaku_sim.sim.predict import predict, prepare  # noqa: E402
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job  # noqa: E402
from fugaku_sim.spec.load import REPO_CLUSTER_DIR  # noqa: E402
from fugaku_sim.spec.stack import IDEAL, load_stack  # noqa: E402

RUNS = REPO_CLUSTER_DIR / "runs"
ALL_QUALITIES = ("measured", "derived", "estimated", "first-step", "withdrawn")


def clock(fn: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def fit_fugaku() -> Any:
    stack = load_stack("deepspeedfugaku-2023")
    factors = [f for label in stack.provenance.parameters if "@" in label  # type: ignore[union-attr]
               for f in parse_condition_factor(_factor_text(label))]
    free = [p for p in stack.provenance.parameters if "@" not in p]  # type: ignore[union-attr]
    inputs = read_inputs([RUNS / "fugaku-deepspeed-2023.csv"], "fugaku")
    return run_fit(inputs, load_cluster("fugaku"), IDEAL, free, factors, ALL_QUALITIES,
                   include_excluded=True, fit_only=None)


def _factor_text(label: str) -> str:
    path, _, cond = label.partition("@")
    return f"{cond}:{path}"


def fit_sc21() -> Any:
    inputs = read_inputs([RUNS / "megatron-sc21.csv"], "dgx-a100")
    return run_fit(inputs, load_cluster("dgx-a100"), IDEAL, ["gemm_efficiency_scale"], [],
                   ALL_QUALITIES, include_excluded=True, fit_only=None)


def fugaku_llm(stack: Any) -> Any:
    preset = load_model_preset("fugaku-llm-13b")
    train = TrainSpec(**{**preset.train, "tokens": 380e9})
    return make_job(load_cluster("fugaku"), preset.model, train, Layout(**preset.layout), stack)


def predict_with_intervals() -> Any:
    job = fugaku_llm(load_stack("deepspeedfugaku-2023"))
    setup = prepare(job)
    pred = predict(job, setup=setup)
    return pred, predict_intervals(pred, setup)


def plan_with_intervals() -> Any:
    job = fugaku_llm(load_stack("deepspeedfugaku-2023"))
    result = plan_layouts(job.cluster, job.model, job.train, 13_824, stack=job.stack)
    best = result.predictions[:3]
    return result, [predict_intervals(p, result.setup_of(p)) for p in best]


def cli(args: list[str]) -> tuple[float, dict[str, Any]]:
    """(wall seconds, parsed JSON) of ``fugaku-sim ARGS`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO_CLUSTER_DIR.parent), "OPENBLAS_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fugaku_sim.cli", *args], env=env,
                          capture_output=True, text=True, check=True, cwd=REPO_CLUSTER_DIR.parent)
    return time.perf_counter() - t0, json.loads(done.stdout)


def cli_timings() -> dict[str, Any]:
    stack = load_stack("deepspeedfugaku-2023")
    argv = list(stack.provenance.statistics["arguments"])  # type: ignore[union-attr]
    job = ["--model", "fugaku-llm-13b", "--cluster", "fugaku", "--stack", "deepspeedfugaku-2023",
           "--json"]
    with tempfile.TemporaryDirectory() as tmp:
        argv[argv.index("--out") + 1] = str(Path(tmp) / "refit.yaml")
        w_fit, fit = cli(argv)
    w_pred, pred = cli(["predict", *job])
    w_plan, plan = cli(["plan", *job, "--nodes", "13824"])
    return {"calibrate_from_runs": {"wall_s": w_fit, "runs": len(fit["runs"])},
            "predict_with_intervals": {"wall_s": w_pred,
                                       "p50_s": pred["intervals"]["step_time_s"]["p50"]},
            "plan_with_intervals": {"wall_s": w_plan, "layouts": len(plan["plans"]),
                                    "with_intervals": sum(1 for p in plan["plans"]
                                                          if p.get("intervals"))}}


def main() -> int:
    out: dict[str, Any] = {"load_average_start": os.getloadavg()}
    w1, c1, fug = clock(fit_fugaku)
    w2, c2, sc = clock(fit_sc21)
    runs = len(fug.problem.rows) + len(sc.problem.rows)
    out["fit"] = {"runs": runs, "wall_s": w1 + w2, "cpu_s": c1 + c2, "target_s": 30,
                  "fugaku": {"runs": len(fug.problem.rows), "wall_s": w1, "cpu_s": c1,
                             "leave_one_out": fug.summary()},
                  "sc21": {"runs": len(sc.problem.rows), "wall_s": w2, "cpu_s": c2}}
    w, c, (pred, iv) = clock(predict_with_intervals)
    out["predict_with_intervals"] = {"wall_s": w, "cpu_s": c, "target_s": 2,
                                     "step_time_s": pred.step_time_s,
                                     "intervals": iv.to_json()["step_time_s"]}
    w, c, (result, ivs) = clock(plan_with_intervals)
    out["plan_with_intervals"] = {"wall_s": w, "cpu_s": c, "target_s": 60,
                                  "layouts": len(result.predictions), "with_intervals": len(ivs)}
    out["cli"] = cli_timings()
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
