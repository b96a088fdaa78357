"""Every shipped YAML file loads, dumps and loads back to an equal spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fugaku_sim.spec import ClusterSpec, Layout, ModelSpec, TrainSpec, load_cluster
from fugaku_sim.spec.load import MODEL_PRESET_DIR, REPO_CLUSTER_DIR, dump_yaml, load_model_preset

CLUSTERS = sorted(REPO_CLUSTER_DIR.glob("*.yaml"))
MODELS = sorted(MODEL_PRESET_DIR.glob("*.yaml"))


def test_presets_are_shipped() -> None:
    names = {p.stem for p in CLUSTERS}
    assert {"fugaku", "local", "dgx-a100"} <= names
    assert {"fugaku-llm-13b", "gpt-tiny", "gpt-micro"} <= {p.stem for p in MODELS}


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.stem)
def test_cluster_round_trip(path: Path) -> None:
    spec = load_cluster(str(path))
    again = ClusterSpec.model_validate(yaml.safe_load(dump_yaml(spec)))
    assert again == spec
    assert load_cluster(path.stem) == spec  # by preset name too


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_model_preset_round_trip(path: Path) -> None:
    preset = load_model_preset(str(path))
    assert ModelSpec.model_validate(yaml.safe_load(dump_yaml(preset.model))) == preset.model
    if preset.layout:
        layout = Layout.model_validate(preset.layout)
        assert Layout.model_validate(yaml.safe_load(dump_yaml(layout))) == layout
    if "global_batch" in preset.train:
        train = TrainSpec.model_validate(preset.train)
        assert TrainSpec.model_validate(yaml.safe_load(dump_yaml(train))) == train


def test_specs_are_frozen() -> None:
    spec = load_cluster("fugaku")
    with pytest.raises(ValueError):
        spec.name = "other"  # type: ignore[misc]


def test_fugaku_virtual_axes() -> None:
    spec = load_cluster("fugaku")
    assert spec.virtual_axis_limits() == [48, 69, 48]
    assert spec.interconnect.nodes == 158_976


def test_gemm_efficiency_interpolates_in_log_size() -> None:
    node = load_cluster("fugaku").node
    lo, hi = node.gemm_efficiency[1], node.gemm_efficiency[2]
    mid = int((lo.min_dim * hi.min_dim) ** 0.5)  # geometric midpoint
    assert node.gemm_efficiency_at(mid) == pytest.approx((lo.efficiency + hi.efficiency) / 2, abs=1e-3)
    assert node.gemm_efficiency_at(1) == node.gemm_efficiency[0].efficiency
    assert node.gemm_efficiency_at(10**9) == node.gemm_efficiency[-1].efficiency


def test_recompute_modes() -> None:
    base = {"global_batch": 8}
    assert TrainSpec(**base).recompute_stage_set(4) == frozenset()
    assert TrainSpec(**base, recompute="all").recompute_stage_set(3) == {0, 1, 2}
    assert TrainSpec(**base, recompute="first-half").recompute_stage_set(8) == {0, 1, 2, 3}
    spec = TrainSpec(**base, recompute="stages", recompute_stages=[1, 3])
    assert spec.recompute_stage_set(4) == {1, 3}
