"""Benchmark of the numpy/MPI trainer on this machine; prints one JSON object.

Figures:

- tokens/s of the workflow's default model (gpt-tiny) on 1 rank and on 2 ranks (dp = 2),
  from ``summary.json`` (mean over the steps after the timing warm-up);
- achieved FLOP/s per rank (tokens/s x model FLOPs per token from
  :func:`fugaku_sim.sim.flops.model_flops_per_token` / ranks) as a fraction of the numpy
  SGEMM rate measured in the same run (goal >= 0.5);
- 2-rank data-parallel efficiency, tokens/s(2) / (2 tokens/s(1)) (goal >= 0.8), and the
  same divided by what two concurrent SGEMM processes get relative to one (the machine is
  shared: this isolates the trainer's overhead from the cores other jobs take);
- if torch is importable, the Hugging Face model of the same size (GPT-2 or Llama) trained
  in torch on one thread with the same batch, micro-batching and AdamW: our step time /
  torch's (goal <= 1.5).

Every rank and torch run with one BLAS thread (OPENBLAS_NUM_THREADS=1,
torch.set_num_threads(1)). The machine is shared, so each timing is the best of a few runs
where that makes sense (SGEMM) and a mean over steps for training.

Usage: ``python benchmarks/bench_train.py [--steps 12] [--data DIR] [--model gpt-tiny]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# one BLAS thread per process, set before numpy loads OpenBLAS (the SGEMM reference and the
# ranks must use the same single core's worth of BLAS)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def sgemm_gflops(n: int = 1024, reps: int = 5, best: bool = True) -> float:
    """float32 n x n x n matmul rate of numpy here, GFLOP/s: the best of ``reps``, or with
    ``best=False`` the mean over them (what a process sustains on a shared core)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 2 * n**3 / (min(times) if best else float(np.mean(times))) / 1e9


def concurrent_sgemm_gflops(procs: int, n: int = 1024, reps: int = 150) -> list[float]:
    """Mean SGEMM rate of each of ``procs`` processes multiplying at the same time (a few
    seconds each), GFLOP/s.

    On a shared machine this is what ``procs`` ranks can get at best: compared with one
    process it separates the data-parallel overhead of the trainer from the cores that
    other jobs take.
    """
    code = (f"import os; os.environ['OPENBLAS_NUM_THREADS']='1'; import sys; "
            f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_train as b; "
            f"print(b.sgemm_gflops({n}, {reps}, best=False))")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                 text=True, env=env) for _ in range(procs)]
    return [float(c.communicate(timeout=600)[0]) for c in children]


def synthetic_data(root: Path, vocab: int, docs: int = 2000) -> Path:
    """A data directory in the data stage's format with random documents (for timing)."""
    sys.path.insert(0, str(REPO / "tests"))
    from train.helpers import write_data  # type: ignore[import-not-found]

    return write_data(root, vocab=vocab, docs=docs)


def run_train(ranks: int, model: str, data: Path, out: Path, steps: int) -> dict[str, Any]:
    """``mpiexec -n ranks fugaku-sim train`` with dp = ranks; returns its summary.json."""
    mpiexec = Path(sys.executable).with_name("mpiexec")
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "fugaku_sim.cli", "train",
           "--model", model, "--data", str(data), "--out", str(out), "--steps", str(steps),
           "--dp", str(ranks), "--resume", "never", "--no-progress"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode:
        raise SystemExit(f"training on {ranks} rank(s) failed:\n{r.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def torch_step_time(model_name: str, steps: int) -> float | None:
    """Mean step time (s) of the same model, batch and optimizer in torch on one thread."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    from fugaku_sim.commands.common import resolve_specs
    from fugaku_sim.release.hf_config import model_config
    from fugaku_sim.spec import Layout
    from fugaku_sim.spec.figures import micro_batches_per_replica

    spec, train, _ = resolve_specs(argparse.Namespace(model=model_name))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fields = model_config(spec, 0, 0)  # the release's config.json: GPT-2 or Llama
    config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields)
    model = transformers.AutoModelForCausalLM.from_config(config)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    micro = micro_batches_per_replica(train, Layout())  # one replica
    data = torch.randint(0, spec.vocab, (micro, train.micro_batch, spec.seq_len + 1))
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.zero_grad()
        for mb in range(micro):
            x = data[mb]
            logits = model(x[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, spec.vocab),
                                                     x[:, 1:].reshape(-1)) / micro
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        opt.step()
        times.append(time.perf_counter() - t)
    skip = min(2, len(times) - 1)
    return float(np.mean(times[skip:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt-tiny")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--data", type=Path, help="data directory (default: synthetic)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each rank count; the fastest is reported")
    args = parser.parse_args()
    from fugaku_sim.sim.flops import model_flops_per_token
    from fugaku_sim.spec import load_model

    spec = load_model(args.model)
    flops_per_token = model_flops_per_token(spec)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or synthetic_data(Path(tmp) / "data", spec.vocab)
        sgemm_before = sgemm_gflops()
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for i in range(args.repeats):  # alternate, so that load from others hits both alike
            for ranks in (1, 2):
                out = Path(tmp) / f"r{ranks}_{i}"
                runs[ranks].append(run_train(ranks, args.model, data, out, args.steps))
        sgemm_after = sgemm_gflops()
        sgemm_one, sgemm_two = concurrent_sgemm_gflops(1), concurrent_sgemm_gflops(2)
    one, two = (max(runs[r], key=lambda s: s["tokens_per_s_mean"]) for r in (1, 2))
    sgemm = max(sgemm_before, sgemm_after)
    tps1, tps2 = one["tokens_per_s_mean"], two["tokens_per_s_mean"]
    result: dict[str, Any] = {
        "model": args.model, "steps": args.steps, "repeats": args.repeats,
        "tokens_per_s_all_runs": {f"{r}_rank(s)": [s["tokens_per_s_mean"] for s in runs[r]]
                                  for r in (1, 2)},
        "model_flops_per_token": flops_per_token,
        "sgemm_gflops": {"before": sgemm_before, "after": sgemm_after},
        "tokens_per_s": {"1_rank": tps1, "2_ranks_dp": tps2},
        "gflops_per_rank": {"1_rank": tps1 * flops_per_token / 1e9,
                            "2_ranks_dp": tps2 * flops_per_token / 2 / 1e9},
        "fraction_of_sgemm": {"1_rank": tps1 * flops_per_token / 1e9 / sgemm,
                              "2_ranks_dp": tps2 * flops_per_token / 2 / 1e9 / sgemm},
        "dp_efficiency_2_ranks": tps2 / (2 * tps1),
        "sgemm_concurrent_gflops": {"1_process": sgemm_one, "2_processes": sgemm_two},
        "machine_2_core_scaling": sum(sgemm_two) / (2 * sgemm_one[0]),
        "dp_efficiency_vs_machine_scaling": tps2 / (2 * tps1)
        / (sum(sgemm_two) / (2 * sgemm_one[0])),
        "step_time_s": {"1_rank": one["step_time_s_mean"], "2_ranks_dp": two["step_time_s_mean"]},
        "breakdown_s": {"1_rank": one["breakdown_s_mean"], "2_ranks_dp": two["breakdown_s_mean"]},
        "final_loss": {"1_rank": one["final_train_loss"], "2_ranks_dp": two["final_train_loss"]},
        "load_average": os.getloadavg(),
    }
    torch_time = torch_step_time(args.model, args.steps)
    if torch_time is not None:
        result["torch_step_time_s"] = torch_time
        result["step_time_ratio_vs_torch"] = one["step_time_s_mean"] / torch_time
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
