"""The Llama-family build (workflows/config/llama.yaml) end to end: llama-tiny trained over
2 ranks with tensor parallelism, evaluated, released as a LlamaForCausalLM and verified."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import yaml
from conftest import CONFIGS
from test_main_workflow import Build, local_build

LLAMA = CONFIGS / "llama.yaml"
CONFIG = yaml.safe_load(LLAMA.read_text())
RUN_NAME = CONFIG["run_name"]


def simulator_refusal(model: str) -> str:
    """Why the simulator refuses ``model`` ('' when it models it): the build predicts the
    run's step and compares it with the measured one, so it needs the simulator."""
    from fugaku_sim.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        main(["check", "--cluster", "local", "--model", model, "--json"])
    return err.getvalue().strip() if "not modelled by the simulator" in err.getvalue() else ""


REFUSAL = simulator_refusal(CONFIG["train"]["model"])


@pytest.fixture(scope="module")
def llama_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """llama.yaml end to end with the local profile, once for this module's tests."""
    if REFUSAL:
        pytest.skip(f"the build needs the simulator's prediction: {REFUSAL}")
    return local_build(tmp_path_factory, LLAMA)


@pytest.mark.slow
def test_llama_build_trains_evaluates_and_releases(llama_build: Build) -> None:
    from fugaku_sim.release.verify import verify_release

    work, run = llama_build.workdir, llama_build.run
    assert run.returncode == 0, run.output[-4000:]
    print(f"llama build, local profile: {run.seconds:.1f} s")
    summary = json.loads((work / "results/train/summary.json").read_text())
    assert summary["model"]["name"] == "llama-tiny" and summary["layout"]["tp"] == 2
    records = [json.loads(x) for x in (work / "results/train/metrics.jsonl").read_text()
               .splitlines() if x.strip()]
    assert len(records) == CONFIG["train"]["settings"]["steps"]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < math.log(summary["model"]["vocab"]) - 1  # it learnt
    release = work / "results/release" / RUN_NAME
    assert (work / f"results/release/{RUN_NAME}.verified").is_file()
    assert verify_release(release)["parameters"] == summary_parameters(summary)
    config = json.loads((release / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_key_value_heads"], config["tie_word_embeddings"]) == (2, False)
    ev = json.loads((work / "results/eval/eval.json").read_text())
    assert ev["perplexity"]["domains"]["ja"]["perplexity"] < summary["model"]["vocab"]


def summary_parameters(summary: dict) -> int:
    from fugaku_sim.spec import ModelSpec
    from fugaku_sim.tensors import tensor_table

    return tensor_table(ModelSpec.model_validate(summary["model"])).parameters()


@pytest.mark.slow
@pytest.mark.interop
def test_transformers_runs_the_llama_release(llama_build: Build) -> None:
    """The trained release in transformers: our logits within 1e-4, the same greedy text."""
    import numpy as np

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fugaku_sim.evaluate.generation import Sampling, generate
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.release.load import load_release

    assert llama_build.run.returncode == 0, "the build failed; see the test above"
    release = llama_build.workdir / "results/release" / RUN_NAME
    model = transformers.AutoModelForCausalLM.from_pretrained(str(release)).eval()
    spec, params, tokenizer = load_release(release)
    ours = GPT(spec, params)
    tokens = np.asarray([[tokenizer.eod_id] + tokenizer.encode("富岳は日本のスーパーコンピュータ")])
    with torch.no_grad():
        theirs = model(torch.tensor(tokens)).logits.numpy()
    np.testing.assert_allclose(ours.logits(tokens), theirs, atol=1e-4, rtol=0)
    prompt = tokens[0].tolist()
    mine = generate(ours, prompt, 24, Sampling(), np.random.default_rng(0))
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=len(mine), do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    assert out[0, len(prompt):].tolist() == mine
