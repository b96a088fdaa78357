"""A short speed probe of this machine: how fast the trainer's own kernels run right now.

A shared machine's speed moves by several percent over minutes while nothing on it changes
(other tenants of the host: ``/proc/stat`` does not see them). ``calibrate`` measures the
machine once; ``validate`` trains minutes later. Both run this probe, lone, in a fresh
single-threaded process: forward passes of one trainer transformer block (the shape of
:data:`PROBE_BLOCK`, 7-15 ms a pass on a 2-core machine of this kind) for about
:data:`PROBE_BUDGET_S`, the median pass kept. ``validate`` runs it before every run and
reports the machine's speed at each run relative to the calibration
(:func:`machine_speed`): above 1 the machine ran faster than when it was calibrated. It
is a figure to read the errors against, not a correction: over 110 runs of five rounds of
``benchmarks/bench_validate.py`` a run's log error followed its log speed only loosely
(correlation 0.20, slope 0.52); it flags a machine that slowed as a whole (a round whose
runs had 0.92 of the calibration's speed read a median error of 21%).

``python -m fugaku_sim.calibrate.probe`` prints ``{"seconds": ...}``; :func:`run_probe`
starts that process and returns its figure, or None when it cannot (a probe never stops a
calibration or a validation).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

#: (layers, hidden, heads, seq_len, vocab, batch) of the probed block: large enough that a
#: pass is mostly GEMM and memory traffic, not per-call cost
PROBE_BLOCK = (2, 256, 4, 128, 4096, 4)
PROBE_BUDGET_S = 0.3
PROBE_NOTE = ("median forward pass of one trainer block (layers, hidden, heads, seq_len, "
              f"vocab, batch = {PROBE_BLOCK}), one process, one BLAS thread")


def block_passes(shape: tuple[int, int, int, int, int], batch: int) -> Callable[[int], None]:
    """``passes(n)``: ``n`` forward passes of the trainer's own transformer blocks (cycling
    over the layers) of a model of ``shape`` = (layers, hidden, heads, seq_len, vocab) on
    ``batch`` random sequences, each pass fed the last one's output."""
    import numpy as np

    from fugaku_sim.spec import ModelSpec
    from fugaku_sim.train import model as M
    from fugaku_sim.train.params import rank_share

    layers, c, heads, t, v = shape
    spec = ModelSpec(name="blocks", layers=layers, hidden=c, heads=heads, seq_len=t, vocab=v)
    params = M.init_params(spec, 0)
    share = rank_share(spec)
    x0 = np.random.default_rng(0).standard_normal((batch, t, c)).astype(np.float32)

    def passes(n: int) -> None:
        x = x0
        for i in range(n):
            x, _ = M.block_forward(params, spec, i % layers, x, share)

    return passes


def probe_seconds(budget_s: float = PROBE_BUDGET_S) -> float:
    """The median time of one forward pass of the probed block, over ``budget_s`` of
    passes after one untimed pass (this process, as it is threaded)."""
    layers, hidden, heads, seq_len, vocab, batch = PROBE_BLOCK
    one_pass = functools.partial(block_passes((layers, hidden, heads, seq_len, vocab), batch), 1)
    one_pass()
    times: list[float] = []
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(times) < 3:
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_probe(timeout_s: float = 60.0) -> float | None:
    """:func:`probe_seconds` in a fresh single-threaded process (one BLAS thread, as a
    rank runs); None if that process fails or prints no figure."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "fugaku_sim.calibrate.probe"],
                              capture_output=True, text=True, env=env, timeout=timeout_s,
                              check=False)
        seconds = float(json.loads(done.stdout)["seconds"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    return seconds if seconds > 0 else None


def machine_speed(calibrated_s: object, now_s: object) -> float | None:
    """The machine's speed now relative to its calibration: the calibration's probe time over
    the probe time now (1.1: 10% faster now); None unless both are positive numbers.

    >>> machine_speed(0.012, 0.010)
    1.2
    >>> machine_speed(None, 0.01) is None
    True
    """
    if not (isinstance(calibrated_s, (int, float)) and isinstance(now_s, (int, float))):
        return None
    if calibrated_s <= 0 or now_s <= 0:
        return None
    return float(calibrated_s) / float(now_s)


def main() -> int:
    print(json.dumps({"seconds": probe_seconds(), "budget_s": PROBE_BUDGET_S}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
