"""The ``prunebench`` command: parses, validates, calls the library. Nothing else lives here."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from prunebench.config import load_config
from prunebench.errors import PrunebenchError

DEFAULT_RESULTS = Path("prunebench-results")
LISTABLE = ("strategies", "models", "datasets")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunebench", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="only print results and errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the experiment a YAML config describes")
    run.add_argument("config", type=Path)
    run.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. prune.compression=16 seed=1")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")

    listing = commands.add_parser("list", help="list registered strategies, models or datasets")
    listing.add_argument("what", nargs="?", choices=LISTABLE)

    demo = commands.add_parser("demo", help="digits + mlp, a few strategies and compressions (< 3 min)")
    demo.add_argument("--results", type=Path, default=DEFAULT_RESULTS / "demo")

    reproduce = commands.add_parser("reproduce", help="reproduce a published result and check it (see --list)")
    reproduce.add_argument("name", nargs="?", help="the reproduction to run")
    reproduce.add_argument("--list", action="store_true", help="list the reproductions")
    reproduce.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    reproduce.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    reproduce.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default $PRUNEBENCH_DATA)")
    reproduce.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def command_run(args: argparse.Namespace, console: Console) -> None:
    from prunebench.experiment import run_experiment

    spec, settings = load_config(args.config, args.overrides)
    result = run_experiment(spec, settings, args.results)
    console.print(
        f"run {result['run_id']}: top-1 {result['top1']:.2%} (dense {result['dense_top1']:.2%}, "
        f"before fine-tuning {result['pre_finetune_top1']:.2%}), compression "
        f"{result['compression_ratio']:.2f}x, theoretical speedup {result['theoretical_speedup']:.2f}x"
    )
    console.print(f"result: {args.results / result['run_id'] / 'result.json'}")


def command_list(args: argparse.Namespace, console: Console) -> None:
    from prunebench.data import DATASETS
    from prunebench.models import MODELS
    from prunebench.pruning import STRATEGIES

    registries = {"strategies": STRATEGIES, "models": MODELS, "datasets": DATASETS}
    for what in [args.what] if args.what else LISTABLE:
        console.print(f"{what}: {', '.join(registries[what].names())}")


def command_demo(args: argparse.Namespace, console: Console) -> None:
    from prunebench.demo import run_demo

    run_demo(args.results, console)


def command_reproduce(args: argparse.Namespace, console: Console) -> None:
    from prunebench.errors import ConfigError
    from prunebench.reproduce import list_reproductions, run_reproduction, run_settings

    if args.list or not args.name:
        for name, summary in list_reproductions().items():
            console.print(f"{name}: {summary}")
        if not args.list:
            raise ConfigError("name a reproduction to run (listed above), or pass --list")
        return
    settings = run_settings(args.data_dir, args.threads)
    report = run_reproduction(args.name, args.seeds, settings, args.results)
    report.print(console)
    console.print(f"report: {args.results / 'reproduce' / args.name / 'report.md'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr,
    )
    handlers = {"run": command_run, "list": command_list, "demo": command_demo, "reproduce": command_reproduce}
    try:
        handlers[args.command](args, console)
    except PrunebenchError as exc:
        print(f"prunebench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
