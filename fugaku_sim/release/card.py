"""The model card: README.md with Hugging Face YAML metadata and an honest body.

Front matter keys follow the Hub's model card spec (``language``, ``license``,
``library_name``, ``tags``, ``datasets``, ``model-index`` with results as
task / dataset / metrics). The body reports what the inputs hold and says "not provided"
where an input is absent; files from other stages (manifest, training summary, prediction,
comparison) are read defensively and shown as tables of their scalar fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fugaku_sim.spec import ModelSpec
from fugaku_sim.spec.record import RECORD_KEYS

NOT_PROVIDED = "_Not provided._"


@dataclass(frozen=True)
class CardInputs:
    """Everything the card shows. Optional inputs are None when not provided."""

    name: str
    spec: ModelSpec
    parameters: int
    license: str
    eval_result: dict[str, Any]
    manifest: dict[str, Any] | None
    summary: dict[str, Any] | None
    prediction: dict[str, Any] | None
    compare: Any | None
    tokenizer_vocab: int
    eod_id: int


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def flatten(obj: dict[str, Any], prefix: str = "", depth: int = 2) -> list[tuple[str, Any]]:
    """Scalar leaves of nested dicts as (dotted key, value), down to ``depth`` levels."""
    rows: list[tuple[str, Any]] = []
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if _scalar(v):
            rows.append((key, v))
        elif isinstance(v, dict) and depth > 1:
            rows += flatten(v, key + ".", depth - 1)
    return rows


def table_of(obj: Any, first: str = "name") -> list[str]:
    """Markdown table of a JSON value: a list of objects (one row each), an object of objects
    (the key becomes column ``first``), or an object (two columns: field, value)."""
    rows: list[dict[str, Any]] = []
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        rows = [dict(flatten(r, depth=1)) for r in obj]
    elif isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        rows = [{first: k, **dict(flatten(v, depth=1))} for k, v in obj.items()]
    elif isinstance(obj, dict):
        pairs = flatten(obj)
        if not pairs:
            return [NOT_PROVIDED]
        return (["| field | value |", "| --- | --- |"]
                + [f"| {k} | {_cell(v)} |" for k, v in pairs])
    if not rows:
        return [NOT_PROVIDED]
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return ([f"| {' | '.join(cols)} |", f"|{' --- |' * len(cols)}"]
            + [f"| {' | '.join(_cell(r.get(c)) for c in cols)} |" for r in rows])


def mixture_of(manifest: dict[str, Any] | None) -> tuple[Any, list[tuple[str, Any]]]:
    """The manifest's mixture table (target vs achieved shares per domain) and its scalar
    fields (total tokens, warnings ...). The data stage writes
    ``{"mixture": {"total_train_tokens": ..., "domains": {d: {...}}}}``; other shapes are
    shown as they are."""
    mixture = None
    for key in ("mixture", "mix", "shares"):
        if manifest and key in manifest:
            mixture = manifest[key]
            break
    if isinstance(mixture, dict) and isinstance(mixture.get("domains"), dict):
        return mixture["domains"], [(k, v) for k, v in mixture.items() if _scalar(v)]
    return mixture, []


SOURCE_COLUMNS = ("domain", "kind", "licence", "license", "documents", "characters", "tokens",
                  "origin")


def sources_table(sources: Any) -> list[str]:
    """The manifest's sources, one row each, with the columns a reader needs (licence and
    origin included; long checksums left to the manifest)."""
    if isinstance(sources, dict) and all(isinstance(v, dict) for v in sources.values()):
        rows = [{"name": k, **{c: v[c] for c in SOURCE_COLUMNS if c in v}}
                for k, v in sources.items()]
        return table_of(rows)
    return table_of(sources)


def front_matter(c: CardInputs) -> dict[str, Any]:
    """The YAML metadata block as a dict (model-index built from eval.json)."""
    from fugaku_sim.release.model_index import model_index

    sources = (c.manifest or {}).get("sources")
    names: list[str] = []
    if isinstance(sources, list):
        names = [str(s.get("name")) for s in sources if isinstance(s, dict) and s.get("name")]
    elif isinstance(sources, dict):
        names = [str(k) for k in sources]
    meta: dict[str, Any] = {
        "language": ["ja", "en"], "license": c.license, "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["gpt2", "causal-lm", "japanese", "fugaku-sim", "safetensors"]}
    if names:
        meta["datasets"] = names
    meta["model-index"] = model_index(c.name, c.eval_result)
    return meta


def _usage(c: CardInputs) -> list[str]:
    return [
        "## How to use", "",
        "With Hugging Face transformers (the tokenizer loads from `tokenizer.json`; neither "
        "sentencepiece nor protobuf is needed):", "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/RELEASE")',
        'model = AutoModelForCausalLM.from_pretrained("PATH/TO/RELEASE")',
        'ids = tokenizer("富岳は", return_tensors="pt").input_ids',
        "out = model.generate(ids, max_new_tokens=32, do_sample=True, top_k=40)",
        "print(tokenizer.decode(out[0], skip_special_tokens=True))",
        "```", "",
        "Without torch, with this project's numpy implementation (KV-cached decoding):", "",
        "```python",
        "from fugaku_sim.release.load import load_release",
        "from fugaku_sim.evaluate.gpt import GPT", "",
        'spec, params, tokenizer = load_release("PATH/TO/RELEASE")',
        "model = GPT(spec, params)",
        "```", "",
        f"Tokenizer: sentencepiece (`tokenizer.model`), {c.tokenizer_vocab} pieces with byte "
        f"fallback; ids `<unk>` 0, `<s>` 1, `</s>` {c.eod_id} = end of document (EOD). "
        "`tokenizer.json` is the same tokenizer for Hugging Face `tokenizers` and gives the "
        "same ids; it adds no BOS or EOS, and the text `</s>` is encoded as text, as "
        "sentencepiece does (transformers 4.42 or later; older versions read it as EOD). "
        "Documents were trained as `tokens + [EOD]`, back to back; to "
        f"start a prompt as a new document, put `{c.eod_id}` (`tokenizer.eos_token_id`) "
        "first.", ""]


def _training(c: CardInputs) -> list[str]:
    lines = ["## Training data", "", "Mixture of training tokens (from the data stage's "
             "manifest: target vs achieved share per domain):", ""]
    table, extras = mixture_of(c.manifest)
    lines += table_of(table, first="domain") if table else [NOT_PROVIDED]
    if extras:
        lines += ["", "; ".join(f"{k}: {_cell(v)}" for k, v in extras)]
    sources = (c.manifest or {}).get("sources")
    if sources is not None:
        lines += ["", "Sources:", "", *sources_table(sources)]
    lines += ["", "## Training layout and measured throughput", ""]
    lines += training_section(c.summary) if c.summary else [NOT_PROVIDED]
    lines += ["", "## Simulator prediction for the same layout", ""]
    # the figures only: the layout record repeats the training section's settings, and the
    # meta block is said in one line
    figures = {k: v for k, v in (c.prediction or {}).items() if k not in (*RECORD_KEYS, "meta")}
    lines += table_of(figures) if c.prediction else [NOT_PROVIDED]
    made_by = prediction_source((c.prediction or {}).get("meta"))
    if made_by:
        lines += ["", made_by]
    warn = layout_mismatch(c.summary, c.prediction)
    if warn:
        lines += ["", f"**Warning:** {warn}"]
    lines += ["", "## Predicted vs measured", ""]
    lines += compare_section(c.compare) if c.compare else [NOT_PROVIDED]
    return lines + [""]


SKIP_SUMMARY = ("model.", "checkpoint", "consolidated")


def prediction_source(meta: Any) -> str:
    """A sentence naming what made the prediction (its ``meta`` block, :mod:`fugaku_sim.meta`):
    tool version and commit, cluster profile and its sha256; '' without one."""
    if not isinstance(meta, dict):
        return ""
    tool = f"fugaku-sim {meta.get('version', '?')}"
    if meta.get("git_commit"):
        tool += f" (commit {str(meta['git_commit'])[:12]})"
    cluster = meta.get("cluster")
    if isinstance(cluster, dict):
        sha = f", sha256 `{str(cluster['sha256'])[:12]}`" if cluster.get("sha256") else ""
        tool += f" on the cluster profile `{cluster.get('name')}`{sha}"
    return f"Predicted by {tool}."


def compare_section(compare: Any) -> list[str]:
    """The predicted-vs-measured input: every list of objects in it as a table (the validate
    stage's ``compare.json`` holds ``runs``), then its remaining scalar fields (``summary``,
    ``meta``); any other JSON value as :func:`table_of` shows it."""
    if not isinstance(compare, dict):
        return table_of(compare, first="quantity")
    lists = {k: v for k, v in compare.items()
             if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)}
    if not lists:
        return table_of(compare, first="quantity")
    lines: list[str] = []
    for key, rows in lists.items():
        lines += [f"`{key}`:", "", *table_of(rows), ""]
    rest = {k: v for k, v in compare.items() if k not in lists}
    pairs = flatten(rest)
    if pairs:
        lines += ["| field | value |", "| --- | --- |"] + [f"| {k} | {_cell(v)} |"
                                                         for k, v in pairs]
    return lines


def _find(flat: dict[str, Any], *names: str) -> Any:
    """The first value whose dotted key ends with one of ``names``, else None."""
    for name in names:
        for key, value in flat.items():
            if key == name or key.endswith("." + name):
                return value
    return None


def training_section(summary: dict[str, Any]) -> list[str]:
    """A sentence with the measured throughput and layout, then the summary's fields
    (without the model, already described, and local paths)."""
    flat = dict(flatten(summary, depth=3))
    tps, step = _find(flat, "tokens_per_s_mean", "tokens_per_s"), \
        _find(flat, "step_time_s_mean", "step_time_s")
    layout = {k: _find(flat, f"layout.{k}", k) for k in ("tp", "pp", "dp")}
    lines = []
    if isinstance(tps, (int, float)):
        where = ", ".join(f"{k} {v}" for k, v in layout.items() if v is not None)
        lines += [f"Measured throughput: **{tps:,.0f} tokens/s**"
                  + (f", {step:.4g} s per step" if isinstance(step, (int, float)) else "")
                  + (f" ({where}" + (f"; world size {flat['world']})" if "world" in flat else ")")
                     if where else "")
                  + " — from the trainer's `summary.json`:", ""]
    rows = [(k, v) for k, v in flat.items() if not k.startswith(SKIP_SUMMARY)]
    return lines + ["| field | value |", "| --- | --- |"] + [f"| {k} | {_cell(v)} |"
                                                          for k, v in rows]


def layout_mismatch(summary: dict[str, Any] | None, prediction: dict[str, Any] | None) -> str:
    """A sentence when both name tp/pp/dp and they differ, else ''."""
    if not summary or not prediction:
        return ""
    measured = dict(flatten(summary, depth=3))
    diffs = []
    for key in ("tp", "pp", "dp"):
        got = [v for k, v in measured.items() if k.split(".")[-1] == key]
        if key in prediction and got and got[0] != prediction[key]:
            diffs.append(f"{key} {prediction[key]} predicted vs {got[0]} trained")
    return f"the prediction is for another layout ({', '.join(diffs)})." if diffs else ""


def _evaluation(c: CardInputs) -> list[str]:
    from fugaku_sim.evaluate.report import perplexity_table, task_table

    ev = c.eval_result
    lines = ["## Evaluation", "", "Held-out perplexity:", "", *perplexity_table(ev), "",
             f"Definition: {ev['perplexity']['definition']}.", "",
             "Tasks (chance level beside each score):", "", *task_table(ev), "",
             f"Multiple choice: {ev['multiple_choice']['definition']}.", "",
             f"Arithmetic: {ev['arithmetic']['definition']}.", ""]
    samples = ev.get("samples") or []
    if samples:
        lines += ["Samples:", ""]
        lines += [f"- **{s['language']}** `{s['prompt']}` → "
                  f"{_cell(s['completion'])}" for s in samples]
        lines.append("")
    return lines


def _limitations(c: CardInputs) -> list[str]:
    return [
        "## Limitations", "",
        f"- A {c.parameters:,}-parameter model with a {c.spec.seq_len}-token context, trained "
        "at workstation scale to exercise the Fugaku-LLM build end to end. It is not the "
        "13B Fugaku-LLM and its text is not expected to be fluent or factual.",
        "- The tasks are built from held-out documents of the same sources as the training "
        "data (in-distribution) and are not standard benchmarks; the scores are not "
        "comparable with published results. Read each score against its chance level.",
        "- Perplexity depends on the tokenizer; bits per byte is the figure to compare "
        "across tokenizers.",
        "- The training text carries the biases and licences of its sources (see the "
        "manifest); do not deploy this model to users.", ""]


def render_card(c: CardInputs, files: list[str]) -> str:
    """README.md text: YAML front matter then the body."""
    import yaml

    meta = yaml.safe_dump(front_matter(c), allow_unicode=True, sort_keys=False, width=100)
    s = c.spec
    head = [
        "---", meta.rstrip("\n"), "---", "", f"# {c.name}", "",
        f"A GPT-2-style causal language model trained with fugaku-sim, a small-scale, "
        f"checkable reproduction of the Fugaku-LLM pre-training build (mostly Japanese text). "
        f"{s.layers} layers, hidden {s.hidden}, {s.heads} heads, MLP {s.ffn}, context "
        f"{s.seq_len}, vocabulary {s.vocab}; {c.parameters:,} parameters in FP32 "
        f"(`model.safetensors`, Hugging Face GPT-2 names, LM head tied to the embedding).", ""]
    files_section = [
        "## Files", "", *[f"- `{f}`" for f in files], "",
        "Check them with `fugaku-sim release verify DIR` (checksums, required files, weights "
        "against `config.json`, tokenizer files against `tokenizer.model`) or `sha256sum -c SHA256SUMS` inside the directory.", ""]
    body = (head + _usage(c) + _training(c) + _evaluation(c) + _limitations(c)
            + files_section)
    return "\n".join(body)
