"""The campaign's profile fields and the presets' campaign sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fugaku_sim.errors import SpecError
from fugaku_sim.spec import load_cluster, load_model_preset
from fugaku_sim.spec.campaign import CampaignProfile, CampaignSettings, QueueWait


def test_fugaku_llm_production_settings() -> None:
    """DeepSpeedFugaku scripts/13b: --eval-interval 100 --eval-iters 10 --save-interval 250,
    #PJM -L elapse=165:00:00."""
    settings = CampaignSettings(**load_model_preset("fugaku-llm-13b").campaign)
    assert (settings.eval_every, settings.eval_iters) == (100, 10)
    assert (settings.checkpoint_every, settings.elapse_h) == (250, 165.0)


def test_fugaku_profile() -> None:
    fugaku = load_cluster("fugaku")
    # one CMU board (2 nodes) in ~2.5 days over 158,976 nodes
    assert fugaku.mtbf_node_h == pytest.approx(2.5 * 24 * 158_976, rel=0.01)
    assert fugaku.scheduler.max_elapse_h == 24
    assert fugaku.campaign.queue_wait_h.p90_h >= fugaku.campaign.queue_wait_h.p50_h
    # profiles without the section get a chain that costs nothing outside the step
    assert load_cluster("local").campaign == CampaignProfile()


def test_settings_defaults_and_rules() -> None:
    assert CampaignSettings().checkpoint_every == "young"
    with pytest.raises(ValidationError):
        CampaignSettings(checkpoint_every=0)
    with pytest.raises(ValidationError):
        CampaignSettings(checkpoint_every="weekly")
    with pytest.raises(ValidationError):
        CampaignSettings(spare_nodes=-1)
    with pytest.raises(ValidationError, match="p90_h"):
        QueueWait(p50_h=2, p90_h=1)
    with pytest.raises(ValidationError, match="p50_h"):
        QueueWait(p50_h=0, p90_h=1)


def test_bad_campaign_section_is_one_line(tmp_path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: {name: m, layers: 2, hidden: 64, heads: 4, seq_len: 32, "
                    "vocab: 100}\ncampaign: {eval_evry: 10}\n")
    with pytest.raises(SpecError, match=r"campaign.eval_evry: unknown key") as exc:
        load_model_preset(str(path))
    assert "\n" not in str(exc.value)
