"""The software stack spec: the shipped stacks, loading, errors, what-if scaling."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fugaku_sim.errors import SpecError
from fugaku_sim.spec.load import REPO_CLUSTER_DIR, dump_yaml
from fugaku_sim.spec.stack import (
    FITTABLE,
    IDEAL,
    StackSpec,
    load_stack,
    load_stack_file,
    parse_scale,
    scaled,
    stack_identity,
    stack_value,
    with_values,
)

STACKS = sorted((REPO_CLUSTER_DIR / "stacks").glob("*.yaml"))


def test_ideal_file_is_the_default_stack() -> None:
    assert load_stack("ideal") == IDEAL
    assert load_stack(None) == IDEAL
    ident = stack_identity(IDEAL)
    assert ident["name"] == "ideal" and ident["file"] == "ideal.yaml"
    assert len(ident["sha256"] or "") == 64


@pytest.mark.parametrize("path", STACKS, ids=lambda p: p.stem)
def test_stack_round_trip(path: Path) -> None:
    spec = load_stack(str(path))
    assert StackSpec.model_validate(yaml.safe_load(dump_yaml(spec))) == spec
    assert load_stack(path.stem) == spec
    for p, interval in spec.intervals.items():
        assert interval.low <= stack_value(spec, p) <= interval.high


def test_fitted_stacks_carry_provenance() -> None:
    for name in ("deepspeedfugaku-2023", "megatron-sc21"):
        spec = load_stack(name)
        prov = spec.provenance
        assert prov is not None and prov.runs_files and prov.runs_files[0]["sha256"]
        assert len(prov.covariance) == len(prov.parameters)
        assert set(spec.intervals) <= set(prov.parameters)
        assert spec.log_residual_sigma > 0


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nnongemm_efficiency: -1\n", "nongemm_efficiency: Input should be greater than 0"),
    ("name: x\ncollective_efficiency: {alreduce: 1}\n", "collective_efficiency.alreduce: unknown key"),
    ("name: x\nkernel_overhead_us: 5\nintervals: {kernel_overhead_us: {low: 6, high: 9}}\n",
     "intervals.kernel_overhead_us: the value 5 is outside [6, 9]"),
    ("name: x\nintervals: {nope: {low: 0, high: 1}}\n", "intervals.nope: names no field"),
    ("name: x\nintervals: {kernel_overhead_us: {low: 2, high: 1}}\n", "low: 2.0 is above high"),
])
def test_bad_stack_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_stack(_write(tmp_path, text))


def test_unknown_stack_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"--stack: no stack 'nope'; known: .*ideal"):
        load_stack("nope")


def test_gemm_efficiency_is_capped_at_one() -> None:
    s = StackSpec(name="x", gemm_efficiency_scale=3.0)
    assert s.gemm_efficiency_at(0.5, 1024) == 1.0
    assert s.gemm_efficiency_at(0.2, 1024) == pytest.approx(0.6)
    own = StackSpec.model_validate({"name": "y", "gemm_efficiency": [
        {"min_dim": 16, "efficiency": 0.2}, {"min_dim": 256, "efficiency": 0.6}]})
    assert own.gemm_efficiency_at(0.9, 64) == pytest.approx(0.4)  # its own curve, not 0.9


def test_with_values_and_paths() -> None:
    s = with_values(IDEAL, {"collective_efficiency.p2p": 0.25, "step_overhead_s": 2.0})
    assert stack_value(s, "collective_efficiency.p2p") == 0.25
    assert s.step_overhead_s == 2.0 and s.collective_efficiency.allreduce == 1.0
    for path in FITTABLE:
        assert stack_value(IDEAL, path) >= 0


def test_scaled_what_if_multiplies_values_and_intervals() -> None:
    base = load_stack_file("deepspeedfugaku-2023")
    factors = dict([parse_scale("gemm_efficiency_scale=6"),
                    parse_scale("collective_efficiency.p2p=3")])
    out = scaled(base.spec, factors)
    assert out.gemm_efficiency_scale == pytest.approx(6 * base.spec.gemm_efficiency_scale)
    lo = base.spec.intervals["collective_efficiency.p2p"].low
    assert out.intervals["collective_efficiency.p2p"].low == pytest.approx(3 * lo)
    ident = stack_identity(out)
    assert ident["scaled_from"] == base.describe() and ident["sha256"] is None
    assert ident["scale_factors"] == {"gemm_efficiency_scale": 6.0,
                                      "collective_efficiency.p2p": 3.0}
    assert out.name == "deepspeedfugaku-2023+what-if"
    assert scaled(base.spec, {}) is base.spec


@pytest.mark.parametrize("text", ["gemm=2", "gemm_efficiency_scale", "gemm_efficiency_scale=-1",
                                  "step_overhead_s=x"])
def test_bad_scale_is_one_line(text: str) -> None:
    with pytest.raises(SpecError, match="--stack-scale"):
        parse_scale(text)
