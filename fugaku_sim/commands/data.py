"""``fugaku-sim data <stage>``: collect, clean, deduplicate, tokenize and mix text corpora.

Each stage reads the previous stage's output under ``--out`` and writes its own there
(``raw/``, ``clean/``, ``dedup/``, ``tokenizer.model``, ``tokenized/``, then ``shards/``,
``blend*.``, ``manifest.json``); ``all`` runs them in order. Prints a JSON summary on stdout;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json

from fugaku_sim.commands.common import positive_int

VERB_HELP = {
    "collect": "fetch and load every configured source into raw/",
    "clean": "normalise, strip boilerplate, filter and route by language into clean/",
    "dedup": "remove exact and near duplicates and assign splits into dedup/",
    "tokenizer": "train the sentencepiece tokenizer (tokenizer.model)",
    "tokenize": "encode every domain and split into indexed datasets (tokenized/)",
    "mix": "realise the mixture: shards/, blend files, manifest.json, composition.png",
    "all": "run every stage in order",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Nested sub-commands, one per stage, sharing ``--config``, ``--out`` and ``--quiet``."""
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", parser_class=type(parser))
    sub.required = True
    for name, help_text in VERB_HELP.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default="default",
                       help="preset name (default, ci) or YAML file with the data settings")
        p.add_argument("--out", default="results/data", help="output directory")
        p.add_argument("--workers", type=positive_int, default=None,
                       help="worker processes (overrides the config)")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    """Load the config, run the stage(s), print a JSON summary."""
    from pathlib import Path

    from fugaku_sim.data.config import load_data_config
    from fugaku_sim.data.pipeline import STAGES, run_stage, summarise
    from fugaku_sim.io import check_output_path

    check_output_path(args.out, f"--out {args.out}", folder=True)
    cfg = load_data_config(args.config)
    if args.workers is not None:
        cfg = cfg.model_copy(update={"workers": args.workers})
    out = Path(args.out)
    stages = STAGES if args.stage == "all" else (args.stage,)
    summaries = [summarise(s, run_stage(s, cfg, out, args.quiet)) for s in stages]
    print(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2))
    return 0
