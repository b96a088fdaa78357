"""``fugaku-sim release``: build a Hugging Face-loadable release, or verify one.

    fugaku-sim release build --checkpoint results/train/model.safetensors \\
        --data results/data --eval results/eval/eval.json [--train results/train] \\
        [--prediction results/plan/train_prediction.json] \\
        [--compare results/compare/run/compare.json] \\
        [--name NAME] [--out results/release] [--license apache-2.0]
    fugaku-sim release verify results/release/NAME
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    build = sub.add_parser("build", help="write results/release/<name>/ and <name>.tar.gz",
                           description="write results/release/<name>/ and <name>.tar.gz")
    build.add_argument("--checkpoint", default="results/train/model.safetensors",
                       help="consolidated checkpoint (safetensors)")
    build.add_argument("--data", default="results/data", help="data stage output directory")
    build.add_argument("--eval", default="results/eval/eval.json",
                       help="eval.json written by `fugaku-sim evaluate` for this checkpoint")
    build.add_argument("--train", default="results/train",
                       help="trainer output directory (summary.json); optional")
    build.add_argument("--prediction", help="simulator prediction JSON for the same layout")
    build.add_argument("--compare", help="predicted-vs-measured JSON")
    build.add_argument("--name", help="release name (default: the model's name)")
    build.add_argument("--out", default="results/release", help="parent directory")
    build.add_argument("--license", default="apache-2.0", help="licence id for the model card")
    build.set_defaults(_action=_run_build)
    verify = sub.add_parser("verify", help="check checksums, files and weights of a release",
                            description="check checksums, files and weights of a release")
    verify.add_argument("directory", metavar="DIR")
    verify.set_defaults(_action=_run_verify)


def run(args: argparse.Namespace) -> int:
    return int(args._action(args))


def _run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fugaku_sim.release.build import ReleaseInputs, build_release

    inputs = ReleaseInputs(
        checkpoint=Path(args.checkpoint), data_dir=Path(args.data), eval_json=Path(args.eval),
        train_dir=Path(args.train) if args.train else None,
        prediction=Path(args.prediction) if args.prediction else None,
        compare=Path(args.compare) if args.compare else None,
        name=args.name, out_dir=Path(args.out), license=args.license)
    directory, tarball, notes = build_release(inputs)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {directory}/ and {tarball}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from fugaku_sim.release.verify import verify_release

    report = verify_release(args.directory)
    print(f"{args.directory}: OK ({report['files']} files checked, "
          f"{report['parameters']:,} parameters, model {report['name']})")
    return 0
