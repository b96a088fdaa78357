"""``fugaku-sim evaluate``: held-out perplexity, arithmetic, multiple choice and samples.

    fugaku-sim evaluate --checkpoint results/train/model.safetensors --data results/data \\
        --out results/eval [--max-docs N] [--seed S] ...
    fugaku-sim evaluate --release results/release/NAME --data results/data --out DIR
"""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


def _prompt(text: str) -> tuple[str, str]:
    lang, sep, prompt = text.partition(":")
    if not sep or not prompt:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LANG:TEXT, e.g. 'ja:富岳は'")
    return lang, prompt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="consolidated checkpoint (model.safetensors)")
    src.add_argument("--release", metavar="DIR", help="a release directory instead")
    parser.add_argument("--data", default="results/data", help="data stage output directory")
    parser.add_argument("--out", default="results/eval", help="where eval.json/eval.md go")
    parser.add_argument("--seed", type=int, default=0, help="subsets, distractors, sampling")
    parser.add_argument("--max-docs", type=_positive, default=200,
                        help="held-out documents per domain (seeded subset)")
    parser.add_argument("--stride", type=_positive,
                        help="perplexity window stride in tokens (default: seq_len)")
    parser.add_argument("--max-problems", type=_positive, default=200,
                        help="arithmetic problems (seeded subset)")
    parser.add_argument("--maths-shots", type=int, default=0,
                        help="solved problems before each arithmetic prompt (few-shot)")
    parser.add_argument("--choice-items", type=_positive, default=100,
                        help="multiple-choice items per language")
    parser.add_argument("--choices", type=_positive, default=4, help="choices per item")
    parser.add_argument("--prompt", type=_prompt, action="append", metavar="LANG:TEXT",
                        help="a generation prompt (repeatable; replaces the defaults)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=_positive, default=40)
    parser.add_argument("--max-new-tokens", type=_positive, default=48)


def run(args: argparse.Namespace) -> int:
    from fugaku_sim.data.spm_model import same_model
    from fugaku_sim.errors import UserError
    from fugaku_sim.evaluate.gpt import GPT
    from fugaku_sim.evaluate.heldout import DataDir
    from fugaku_sim.evaluate.runner import (
        DEFAULT_PROMPTS,
        EvalOptions,
        evaluate_model,
        write_results,
    )
    from fugaku_sim.evaluate.tokenizer import Tokenizer
    from fugaku_sim.progress import Progress
    from fugaku_sim.tensors.consolidated import read_consolidated

    data = DataDir.open(args.data)
    tokenizer = Tokenizer(data.tokenizer_path, eod_id=data.eod_id)
    if args.release:
        from fugaku_sim.release.load import load_release

        spec, params, rel_tok = load_release(args.release)
        if not same_model(rel_tok.path, tokenizer.path):
            raise UserError(f"{rel_tok.path}: differs from {tokenizer.path}; evaluate a "
                            "release with the data directory it was trained on")
        source = str(args.release)
    else:
        spec, params = read_consolidated(args.checkpoint)
        source = str(args.checkpoint)
    if tokenizer.vocab_size > spec.vocab:
        raise UserError(f"{tokenizer.path}: {tokenizer.vocab_size} tokens do not fit the "
                        f"model's vocabulary of {spec.vocab}")
    if args.stride and args.stride > spec.seq_len:
        raise UserError(f"--stride {args.stride} exceeds the model's seq_len {spec.seq_len}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    if args.maths_shots < 0:
        raise UserError(f"--maths-shots must be >= 0, got {args.maths_shots}")
    opts = EvalOptions(seed=args.seed, max_docs=args.max_docs, stride=args.stride,
                       max_problems=args.max_problems, maths_shots=args.maths_shots, choice_items=args.choice_items,
                       n_choices=args.choices, temperature=args.temperature, top_k=args.top_k,
                       max_new_tokens=args.max_new_tokens,
                       prompts=tuple(args.prompt) if args.prompt else DEFAULT_PROMPTS)
    with Progress("evaluate") as progress:
        result = evaluate_model(GPT(spec, params), tokenizer, data, opts, source,
                                lambda task, done, total, info: progress.update(done, total,
                                                                                task, info))
    json_path, md_path = write_results(result, args.out)
    _print_summary(result, json_path, md_path)
    return 0


def _print_summary(result: dict, json_path: object, md_path: object) -> None:
    ppl = result["perplexity"]["domains"]
    parts = [f"{d} {r['perplexity']:.2f}" for d, r in ppl.items() if "perplexity" in r]
    print(f"perplexity: {', '.join(parts) or 'no held-out data'}")
    ar = result["arithmetic"]
    if "exact_match" in ar:
        print(f"arithmetic exact match: {ar['exact_match']:.3f} ({ar['correct']}/{ar['problems']})")
    for name, t in result["multiple_choice"]["tasks"].items():
        if "acc" in t:
            print(f"{name}: acc {t['acc']:.3f}, acc_norm {t['acc_norm']:.3f} "
                  f"(chance {t['chance']:.3f}, {t['items']} items)")
    print(f"wrote {json_path} and {md_path} in {result['seconds']['total']:.1f} s")
