"""Ranges of assumed figures: dotted paths, validation, the shipped profiles' ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fugaku_sim.errors import SpecError
from fugaku_sim.spec import load_cluster
from fugaku_sim.spec.load import REPO_CLUSTER_DIR
from fugaku_sim.spec.ranges import Interval, check_ranges, numeric_at, with_numbers


def test_numeric_at_follows_fields_indices_and_keys() -> None:
    c = load_cluster("fugaku")
    assert numeric_at(c, "node.gemm_efficiency.4.efficiency") == 0.88
    assert numeric_at(c, "interconnect.hop_latency_us") == 0.1
    local = load_cluster("local-calibrated")
    assert numeric_at(local, "node.elementwise_Gelem_per_s.gelu_fwd") > 0
    for bad, why in (("node.nope", "names no field"), ("node.gemm_efficiency.9.efficiency",
                     "names no field"), ("node", "not a number"), ("name", "not a number")):
        with pytest.raises(ValueError, match=why):
            numeric_at(c, bad)


def test_check_ranges_names_the_section_and_path() -> None:
    c = load_cluster("fugaku")
    with pytest.raises(ValueError, match=r"assumed\.node\.op_overhead_us: the value 10 is outside"):
        check_ranges(c, {"node.op_overhead_us": Interval(low=11, high=20)}, "assumed")
    check_ranges(c, {"node.op_overhead_us": Interval(low=10, high=10)}, "assumed")


@pytest.mark.parametrize("name", ["fugaku", "dgx-a100"])
def test_every_assumed_figure_has_a_range_and_a_measurement(name: str) -> None:
    c = load_cluster(name)
    assert len(c.assumed) >= 10
    for path, r in c.assumed.items():
        assert r.low < r.high, path
        assert r.measure, path
    assert "node.op_overhead_us" in c.assumed and "node.mem_reserved_GiB" in c.assumed
    # the GEMM curve's assumed points: all of dgx-a100's, fugaku's below 1,024 and its top
    assert sum(p.startswith("node.gemm_efficiency.") for p in c.assumed) == len(
        c.node.gemm_efficiency)


def test_bad_range_in_a_profile_is_one_line(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_CLUSTER_DIR / "fugaku.yaml").read_text())
    data["assumed"]["node.op_overhead_us"] = {"low": 20, "high": 50}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"assumed\.node\.op_overhead_us: the value 10 is outside "
                                        r"\[20, 50\]"):
        load_cluster(str(path))
    data["assumed"] = {"node.op_overhed_us": {"low": 1, "high": 50}}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"assumed\.node\.op_overhed_us: names no field"):
        load_cluster(str(path))


def test_with_numbers_validates() -> None:
    c = load_cluster("fugaku")
    moved = with_numbers(c, {"node.gemm_efficiency.0.efficiency": 0.3,
                             "interconnect.hop_latency_us": 0.2})
    assert moved.node.gemm_efficiency[0].efficiency == 0.3
    assert moved.interconnect.hop_latency_us == 0.2  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"^cluster\.node\.gemm_efficiency\.0\.efficiency: "):
        with_numbers(c, {"node.gemm_efficiency.0.efficiency": 1.5}, "cluster")


@pytest.mark.hostile
@pytest.mark.parametrize(("path", "low", "high", "message"), [
    ("interconnect.hop_latency_us", 0.05, 2e4, "assumed.interconnect.hop_latency_us.high: "
     "above the limit of 10000 us"),
    ("node.gemm_efficiency.0.efficiency", 0.1, 1.2,
     "assumed.node.gemm_efficiency.0.efficiency.high: Input should be less than or equal to 1"),
    ("node.mem_reserved_GiB", -1, 5, "assumed.node.mem_reserved_GiB.low: Input should be "
     "greater than or equal to 0"),
])
def test_a_range_end_its_field_refuses_is_named(path: str, low: float, high: float,
                                                message: str) -> None:
    """A prediction samples between the ends and sets each in the profile: an end the field
    refuses is named when the profile loads, not met mid-prediction."""
    from pydantic import ValidationError

    data = load_cluster("fugaku").model_dump(mode="json")
    data["assumed"][path] = {"low": low, "high": high}
    with pytest.raises(ValidationError) as info:
        type(load_cluster("fugaku")).model_validate(data)
    assert message in str(info.value)


@pytest.mark.hostile
def test_range_ends_of_a_mapping_value_are_checked() -> None:
    """``node.elementwise_Gelem_per_s.<kind>``: a mapping's value, checked as the mapping's
    value type (with its limit)."""
    from pydantic import ValidationError

    data = load_cluster("local-calibrated").model_dump(mode="json")
    data["assumed"] = {"node.elementwise_Gelem_per_s.gelu_fwd": {"low": 1, "high": 1e12}}
    with pytest.raises(ValidationError, match="gelu_fwd.high: above the limit of 1e"):
        type(load_cluster("fugaku")).model_validate(data)
    data["assumed"] = {"node.elementwise_Gelem_per_s.gelu_fwd": {"low": 1, "high": 9}}
    type(load_cluster("fugaku")).model_validate(data)
