"""The ``fugaku-sim`` command: parse the verb and its options, then dispatch.

Each verb lives in ``fugaku_sim.commands.<module>``, which provides
``add_arguments(parser)`` and ``run(args) -> int``. This module only parses and dispatches;
errors a user can cause (:class:`fugaku_sim.errors.UserError`) become one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fugaku_sim import __version__
from fugaku_sim.errors import UserError

# verb -> (module, one-line help). Modules are imported when the parser is built; they must
# keep heavy imports (matplotlib, snakemake, mpi4py) inside functions.
VERBS: dict[str, tuple[str, str]] = {
    "check": ("fugaku_sim.commands.check", "validate a job and print its derived figures"),
    "predict": ("fugaku_sim.commands.predict", "simulate one training step and cost the run"),
    "plan": ("fugaku_sim.commands.plan", "rank every valid layout for a node count"),
    "sweep": ("fugaku_sim.commands.sweep", "vary one quantity and write CSV plus a plot"),
    "sensitivity": ("fugaku_sim.commands.sensitivity", "rank the uncertain inputs by how far each moves a prediction"),
    "campaign": ("fugaku_sim.commands.campaign", "the whole run as a chain of jobs with failures, over many seeds"),
    "data": ("fugaku_sim.commands.data", "collect, clean, deduplicate, tokenize and mix text corpora"),
    "train": ("fugaku_sim.commands.train", "train a GPT over MPI with tensor, pipeline and data parallelism"),
    "evaluate": ("fugaku_sim.commands.evaluate", "held-out perplexity, tasks and samples"),
    "release": ("fugaku_sim.commands.release", "build or verify a Hugging Face release"),
    "calibrate": ("fugaku_sim.commands.calibrate", "measure this machine and write a calibrated cluster profile"),
    "validate": ("fugaku_sim.commands.validate", "predicted vs measured step time of real training runs"),
    "runs": ("fugaku_sim.commands.runs", "check runs files; import measured runs from training logs"),
    "workflow": ("fugaku_sim.commands.workflow", "steps between the workflow's stages"),
}


class _Parser(argparse.ArgumentParser):
    """argparse parser whose usage errors exit 2 with one line (argparse's own status)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"fugaku-sim: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fugaku-sim",
        description="Plan, run and check large-language-model pre-training on torus supercomputers.",
    )
    parser.add_argument("--version", action="version", version=f"fugaku-sim {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True
    for verb, (module_name, help_text) in VERBS.items():
        module = importlib.import_module(module_name)
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except UserError as exc:
        print(f"fugaku-sim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fugaku-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
