"""``fugaku-sim check`` on the Fugaku-LLM production layout."""

from __future__ import annotations

import json

import pytest

from fugaku_sim.sim.flops import megatron_parameter_count, model_flops_per_token, parameter_count
from fugaku_sim.spec import load_model

PROD = ["check", "--cluster", "fugaku", "--model", "fugaku-llm-13b", "--tp", "6", "--pp", "8",
        "--dp", "288", "--micro-batch", "1", "--global-batch", "2016"]


def test_fugaku_llm_is_valid_and_13b(run_cli) -> None:
    status, out, err = run_cli(*PROD, "--json")
    assert status == 0, err
    fig = json.loads(out)
    assert fig["valid"] is True
    assert fig["nodes"] == 13_824 and fig["grad_accum"] == 7
    assert fig["recompute_stages"] == [0, 1, 2, 3]
    # about 13.2B parameters, within 1% of the Megatron formula (Narayanan et al., SC21)
    assert fig["parameters"] == pytest.approx(13.2e9, rel=0.01)
    assert fig["parameters"] == pytest.approx(fig["parameters_megatron_formula"], rel=0.01)
    assert fig["global_batch_tokens"] == 2016 * 2048
    assert fig["steps"] == 92_038  # ceil(380e9 / (2016 * 2048))
    assert fig["fits_memory"] is True
    assert len(fig["memory_by_stage_GiB"]) == 8


def test_tp_that_does_not_divide_heads(run_cli) -> None:
    args = [a if a != "6" else "5" for a in PROD]
    status, out, err = run_cli(*args)
    assert status == 2 and "layout.tp" in err and out == ""


def test_human_table(run_cli) -> None:
    status, out, _ = run_cli(*PROD)
    assert status == 0 and "layout is valid" in out and "13.175 B" in out


def test_flops_per_token_matches_megatron_formula() -> None:
    model = load_model("fugaku-llm-13b")
    l, h, s, v = model.layers, model.hidden, model.seq_len, model.vocab
    per_token = 72 * l * h**2 * (1 + s / (6 * h) + v / (12 * l * h))
    assert model_flops_per_token(model) == pytest.approx(per_token, rel=1e-9)
    assert parameter_count(model) == pytest.approx(megatron_parameter_count(model), rel=1e-3)


def test_gpt2_small_has_124m_parameters() -> None:
    # Hugging Face gpt2: 124,439,808 parameters (tied head)
    assert parameter_count(load_model("gpt2-small")) == 124_439_808


def test_recomputation_shrinks_memory(run_cli) -> None:
    _, out_none, _ = run_cli(*PROD, "--recompute", "none", "--json")
    _, out_all, _ = run_cli(*PROD, "--recompute", "all", "--json")
    assert json.loads(out_all)["memory_per_node_GiB"] < json.loads(out_none)["memory_per_node_GiB"]


def test_a_llama_layout_leaves_the_gpt_closed_forms_out(run_cli) -> None:
    """Narayanan et al.'s formulas count GPT layers; for a Llama model they are null, and the
    parameters and FLOPs come from the tensor table."""
    status, out, err = run_cli("check", "--cluster", "dgx-a100", "--model", "llama-3-70b",
                               "--tp", "8", "--pp", "4", "--dp", "2", "--global-batch", "64",
                               "--precision", "bf16", "--attention", "flash", "--json")
    assert status == 0, err
    fig = json.loads(out)
    assert fig["parameters"] == 70_553_706_496
    assert fig["parameters_megatron_formula"] is None and fig["megatron_flops_per_step"] is None
    assert fig["model_flops_per_token"] == model_flops_per_token(load_model("llama-3-70b"))
