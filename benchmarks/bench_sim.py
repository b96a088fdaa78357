"""Benchmarks of the simulator; prints one JSON object.

    .venv/bin/python benchmarks/bench_sim.py [--quick]

- predict of the Fugaku-LLM layout (fast mode), median of several runs, and its parts
  (placement + pricing of collectives, and the simpy step);
- plan over every valid layout of the 13B model on 13,824 nodes;
- detailed mode on a 4x4x4 torus (every replica, every flow);
- growth: fast predict against nodes (dp), pipeline stages and micro-batches; detailed mode
  against micro-batches.
Run on one core (the machine is shared); figures are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fugaku_sim.sim.plan import plan_layouts  # noqa: E402
from fugaku_sim.sim.predict import predict, prepare, run_engine  # noqa: E402
from fugaku_sim.spec import Layout, TrainSpec, load_cluster, load_model_preset, make_job  # noqa: E402
from tests.sim.small import small_job, small_torus  # noqa: E402


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fugaku_job(**layout: Any) -> Any:
    preset = load_model_preset("fugaku-llm-13b")
    train = dict(preset.train)
    train.update(layout.pop("train", {}))
    return make_job(
        load_cluster("fugaku"),
        preset.model,
        TrainSpec(**train),
        Layout(**{**preset.layout, **layout}),
    )


def priced(job: Any) -> Any:
    """Place the ranks and price every collective the engine will ask for."""
    setup = prepare(job)
    pp = job.layout.pp
    for s in range(pp):
        setup.comm.tp_plan(s)
        setup.comm.dp_plan(s)
        if s + 1 < pp:
            setup.comm.p2p_plan(s, s + 1)
            setup.comm.p2p_plan(s + 1, s)
    setup.comm.embedding_plan()
    return setup


def bench_predict(repeat: int) -> dict[str, Any]:
    job = fugaku_job()
    t_all, pred = timed(lambda: predict(job), repeat)
    t_setup, setup = timed(lambda: priced(job), repeat)
    t_engine, _ = timed(lambda: run_engine(job, setup, "fast"), repeat)
    return {
        "median_s": t_all,
        "placement_and_pricing_s": t_setup,
        "engine_s": t_engine,
        "step_time_s": pred.step_time_s,
    }


def bench_plan() -> dict[str, Any]:
    preset = load_model_preset("fugaku-llm-13b")
    train = TrainSpec(**preset.train)
    t, result = timed(lambda: plan_layouts(load_cluster("fugaku"), preset.model, train, 13824))
    return {
        "seconds": t,
        "considered": result.considered,
        "predicted": len(result.predictions),
        "pruned_by_memory": len(result.too_big),
    }


def bench_detailed() -> dict[str, Any]:
    out = {}
    for name, (tp, pp, dp, m, placement) in {
        "tp4_pp4_dp4_m8_topology": (4, 4, 4, 8, "topology"),
        "tp2_pp2_dp16_m32_linear": (2, 2, 16, 32, "linear"),
    }.items():
        job = small_job(small_torus(), tp, pp, dp, global_batch=m * dp, placement=placement)
        t, pred = timed(lambda j=job: predict(j, "detailed"))
        fast = predict(job).step_time_s
        out[name] = {"seconds": t, "relative_difference_to_fast": pred.step_time_s / fast - 1}
    return out


def growth() -> dict[str, Any]:
    out: dict[str, Any] = {
        "fast_vs_nodes": {},
        "fast_vs_stages": {},
        "fast_vs_micro_batches": {},
        "detailed_vs_micro_batches": {},
    }
    for dp, shape in ((36, [12, 6, 24]), (72, [24, 6, 24]), (144, [24, 6, 48]), (288, [48, 6, 48])):
        job = fugaku_job(dp=dp, job_shape=shape, train={"global_batch": 7 * dp})
        out["fast_vs_nodes"][job.nodes] = timed(lambda j=job: predict(j))[0]
    for pp in (2, 4, 8, 20, 40):
        job = fugaku_job(pp=pp, dp=48, job_shape=None, train={"global_batch": 48 * 32})
        out["fast_vs_stages"][pp] = timed(lambda j=job: predict(j))[0]
    for m in (7, 28, 112, 448):
        job = fugaku_job(train={"global_batch": 288 * m})
        out["fast_vs_micro_batches"][m] = timed(lambda j=job: predict(j))[0]
    for m in (4, 8, 16):
        job = small_job(small_torus(), 4, 4, 4, global_batch=4 * m)
        out["detailed_vs_micro_batches"][m] = timed(lambda j=job: predict(j, "detailed"))[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the growth measurements")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "predict_fugaku_llm": bench_predict(repeat=7),
        "plan_fugaku_llm_13824_nodes": bench_plan(),
        "detailed_4x4x4": bench_detailed(),
    }
    if not args.quick:
        report["growth_s"] = growth()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
