"""Predicted-vs-measured outputs: a rich table, and compare.{json,csv,md,png}."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from fugaku_sim.calibrate.compare import Row
from fugaku_sim.io import atomic_path
from fugaku_sim.meta import machine_of
from fugaku_sim.spec.breakdown import BREAKDOWN_KEYS, SHORT_LABELS

TARGETS = {"median_abs_error": 0.10, "worst_abs_error": 0.25}


def _ms(x: float) -> str:
    return f"{x * 1e3:.1f}"


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def _measured(r: Row) -> str:
    """The measured ms, with the range of the passes' values when the run was trained more
    than once (``validate --repeats``): how far the measurement itself moves."""
    values = r.extra.get("measured_step_time_stats", {}).get("pass_values")
    if not values:
        return _ms(r.measured_step_s)
    return f"{_ms(r.measured_step_s)} ({_ms(min(values))}-{_ms(max(values))})"


def _foreign(r: Row) -> str:
    """The share of the machine other work took during the run (``?`` when unknown)."""
    share = r.extra.get("foreign_cpu_share")
    return "?" if share is None else f"{share:.0%}"


def breakdown_text(measured: dict[str, float], predicted: dict[str, float]) -> str:
    """``comp 120/131 tp 4/3 ...`` (ms, measured/predicted), the non-zero terms only."""
    parts = [f"{SHORT_LABELS[k]} {_ms(measured.get(k, 0.0))}/{_ms(predicted.get(k, 0.0))}"
             for k in BREAKDOWN_KEYS
             if max(measured.get(k, 0.0), predicted.get(k, 0.0)) >= 5e-5]
    return " ".join(parts)


def rich_table(rows: list[Row], summary: dict[str, Any], title: str) -> Any:
    """The side-by-side table (rich ``Table``)."""
    from rich.table import Table

    table = Table(title=title, caption=caption(summary))
    for name, justify in (("run", "left"), ("ranks", "right"), ("measured ms", "right"),
                          ("predicted ms", "right"), ("error", "right"),
                          ("other work", "right"),
                          ("breakdown ms (measured/predicted)", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        style = "red" if abs(r.error) > TARGETS["worst_abs_error"] else None
        table.add_row(r.label, str(r.ranks), _measured(r), _ms(r.predicted_step_s),
                      _pct(r.error), _foreign(r), breakdown_text(r.measured_breakdown_s,
                                                    r.predicted_breakdown_s), style=style)
    return table


def caption(summary: dict[str, Any]) -> str:
    agreed = summary.get("fastest_agreed")
    text = (f"median |error| {summary['median_abs_error']:.1%} (target <= 10%), worst "
            f"{summary['worst_abs_error']:.1%} ({summary['worst_run']}; target <= 25%), "
            f"fastest layout agreed: {'n/a' if agreed is None else 'yes' if agreed else 'no'}")
    if summary.get("median_pass_spread") is not None:
        text += (f"; a run's passes differ by a median {summary['median_pass_spread']:.1%} "
                 "(measured ms: mean of the passes, their range in brackets)")
    speed = summary.get("machine_speed_median")
    if speed is not None:
        lo, hi = summary["machine_speed_range"]
        text += (f"; the machine ran at {speed:.2f} x its speed at calibration (runs "
                 f"{lo:.2f}-{hi:.2f}; a probe of the trainer's block before each run): above "
                 "1 the runs had a faster machine than the prediction's")
    floor = summary.get("median_abs_error_p10")
    if floor is not None and summary.get("statistic", "median") != "p10":
        text += (f"; against each run's 10th-percentile step (its undisturbed steps: other "
                 f"work only slows a step) median {floor:.1%}, worst "
                 f"{summary['worst_abs_error_p10']:.1%}")
    contended = summary.get("contended_runs", 0)
    if contended:
        limit = summary.get("quiet_share_limit", 0.1)
        quiet = summary.get("median_abs_error_quiet")
        text += (f"; {contended} of {summary['runs']} runs measured while other work took more "
                 f"than {limit:.0%} of the machine (column 'other work'): they show a shared "
                 "machine, not the prediction's dedicated one"
                 + (f"; over the quiet runs median {quiet:.1%}, worst "
                    f"{summary['worst_abs_error_quiet']:.1%}" if quiet is not None else ""))
    return text


def csv_text(rows: list[Row]) -> str:
    buf = io.StringIO()
    cols = ["label", "model", "ranks", "tp", "pp", "dp", "micro_batch", "global_batch",
            "measured_step_s", "predicted_step_s", "error", "steps_timed"]
    cols += [f"measured_{k}_s" for k in BREAKDOWN_KEYS] + [f"predicted_{k}_s" for k in BREAKDOWN_KEYS]
    cols += [f"error_{k}_s" for k in BREAKDOWN_KEYS] + ["foreign_cpu_share", "machine_speed"]
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        d = r.as_dict()
        w.writerow([d[c] for c in cols[:12]]
                   + [r.measured_breakdown_s[k] for k in BREAKDOWN_KEYS]
                   + [r.predicted_breakdown_s[k] for k in BREAKDOWN_KEYS]
                   + [r.breakdown_error_s[k] for k in BREAKDOWN_KEYS]
                   + [r.extra.get("foreign_cpu_share"), r.extra.get("machine_speed")])
    return buf.getvalue()


def markdown_text(rows: list[Row], summary: dict[str, Any], header: str) -> str:
    lines = [f"# Predicted vs measured step time\n\n{header}\n",
             "| run | ranks | measured ms | predicted ms | error | other work | "
             "breakdown ms (measured/predicted) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.label} | {r.ranks} | {_measured(r)} | "
                     f"{_ms(r.predicted_step_s)} | {_pct(r.error)} | {_foreign(r)} | "
                     f"{breakdown_text(r.measured_breakdown_s, r.predicted_breakdown_s)} |")
    lines += ["", caption(summary) + ".", "",
              "Breakdown terms: the trainer's are the mean over ranks, the simulator's those "
              "of its critical pipeline stage; both sum to about the step time. 'Other work': "
              "the share of the machine's CPU time that other processes (or, in a virtual "
              "machine, other tenants) took while the run trained.", ""]
    groups = summary.get("fastest_by_model", []) + summary.get("fastest_by_model_and_ranks", [])
    if groups:
        lines += ["| group | runs | measured fastest | predicted fastest | agree | margin |",
                  "|---|---:|---|---|---|---:|"]
        lines += [f"| {g['group']} | {g['runs']} | {g['measured_fastest']} | "
                  f"{g['predicted_fastest']} | {'yes' if g['agree'] else 'no'} | "
                  f"{g['measured_margin']:.1%} |" for g in groups]
    return "\n".join(lines) + "\n"


def profile_lines(meta: dict[str, Any]) -> list[str]:
    """What the predictions were made on, for a reader of compare.md: each spec file of
    ``meta`` (:mod:`fugaku_sim.meta`: the cluster profile, a stack) with its sha256 and when
    and where its figures were measured, the machine the runs were measured on, and a warning
    when the profile was measured on another machine."""
    here = machine_of(meta)
    lines = []
    for kind in ("cluster", "stack"):
        spec = meta.get(kind)
        if not isinstance(spec, dict):
            continue
        what = "cluster profile" if kind == "cluster" else "software stack"
        digest = f"sha256 `{str(spec['sha256'])[:12]}`" if spec.get("sha256") else "no file"
        where = (f"measured {spec['measured_utc']}" if spec.get("measured_utc") else
                 "not measured (datasheet or assumed figures)")
        if spec.get("measured_on"):
            where += f" on {spec['measured_on']}"
        lines.append(f"Predicted on {what} `{spec.get('name')}` "
                     f"({'`' + spec['file'] + '`, ' if spec.get('file') else ''}{digest}), "
                     f"{where}.")
        other = spec.get("measured_on")
        if kind == "cluster" and other and here and other != here:
            lines.append(f"**The profile was measured on another machine ({other}) than these "
                         f"runs ({here}): errors include the difference between the machines.**")
    runs_on = f" on {here}" if here else ""
    lines.append(f"Runs measured{runs_on}; load average {meta.get('load_average_start')} -> "
                 f"{meta.get('load_average_end')}.")
    return lines


def profile_name(meta: dict[str, Any]) -> str:
    """``profile local-calibrated, measured 2026-11-29 on vm (...); runs on ...``: what a
    plot's title says of the profile and the machines."""
    spec = meta.get("cluster")
    if not isinstance(spec, dict):
        return f"profile {spec}"
    text = f"profile {spec.get('name')}"
    if spec.get("measured_utc"):
        text += f", measured {str(spec['measured_utc'])[:10]}"
        text += f" on {spec['measured_on']}" if spec.get("measured_on") else ""
    here = machine_of(meta)
    return text + (f"; runs on {here}" if here else "")


def _log_ticks(axis: Any) -> None:
    """Labels at 1, 2 and 5 times powers of ten, in plain numbers (``20``, not ``2x10^1``):
    matplotlib's default labels every minor tick of a short log range, and they overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot(rows: list[Row], path: Path, title: str) -> None:
    """Scatter of predicted vs measured step time (log-log, y = x and +-25% bands) beside
    per-run bars of the error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.4]})
    meas = [r.measured_step_s * 1e3 for r in rows]
    pred = [r.predicted_step_s * 1e3 for r in rows]
    models = sorted({r.model for r in rows})
    for i, m in enumerate(models):
        xs = [a for a, r in zip(meas, rows) if r.model == m]
        ys = [b for b, r in zip(pred, rows) if r.model == m]
        ax.scatter(xs, ys, label=m, marker="os^D"[i % 4], zorder=3)
    lo, hi = min(meas + pred) * 0.7, max(meas + pred) * 1.4
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="predicted = measured")
    for f, style in ((1.1, ":"), (1.25, "--")):
        ax.plot([lo, hi], [lo * f, hi * f], "k" + style, lw=0.7)
        ax.plot([lo, hi], [lo / f, hi / f], "k" + style, lw=0.7)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="measured step time (ms)", ylabel="predicted step time (ms)",
           title="step time (dotted +-10%, dashed +-25%)")
    _log_ticks(ax.xaxis)
    _log_ticks(ax.yaxis)
    ax.legend(fontsize=8)
    errs = [r.error * 100 for r in rows]
    bx.barh(range(len(rows)), errs, color=["tab:red" if abs(e) > 25 else "tab:blue" for e in errs])
    bx.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=7)
    bx.invert_yaxis()
    for x in (-25, -10, 10, 25):
        bx.axvline(x, color="k", ls="--" if abs(x) == 25 else ":", lw=0.7)
    bx.axvline(0, color="k", lw=1)
    bx.set(xlabel="error: predicted / measured - 1 (%)", title="error per run")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_outputs(rows: list[Row], summary: dict[str, Any], meta: dict[str, Any],
                  out_dir: Path) -> list[Path]:
    """compare.json, compare.csv, compare.md and compare.png under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    count = f"{len(rows)} run" + ("s" if len(rows) != 1 else "")
    header = "\n\n".join([f"{count}.", *profile_lines(meta)])
    files = {
        "compare.json": json.dumps({"meta": meta, "summary": summary,
                                    "runs": [r.as_dict() for r in rows]}, indent=1) + "\n",
        "compare.csv": csv_text(rows),
        "compare.md": markdown_text(rows, summary, header),
    }
    paths = []
    for name, text in files.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        paths.append(out_dir / name)
    plot(rows, out_dir / "compare.png", f"{profile_name(meta)}\n{caption(summary)}")
    return paths + [out_dir / "compare.png"]
