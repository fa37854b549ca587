"""Run the core benchmarks and print measured ratios against their targets.

    python benchmarks/run.py            # full run, a few minutes on 2 CPU cores
    python benchmarks/run.py --quick    # smoke run, under a minute
    python benchmarks/run.py --only step,select --json out.json --markdown out.md

Exit status: 0 when every target is met (or skipped), 1 when one is missed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks import epoch, selection, step_overhead  # noqa: E402  (puts src/ on the path first)
from benchmarks.common import Result, environment, json_report, markdown_report  # noqa: E402

import prunebench  # noqa: E402  # isort: skip

BENCHMARKS = ("step", "select", "epoch")
STYLE = {"pass": "green", "miss": "bold red", "info": "cyan", "skip": "yellow"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run, not a measurement")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (default 1: on a shared machine, more threads mostly measure contention)",
    )
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu",
        help="time source (default cpu: process CPU time, immune to waiting for a shared core)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding mnist/ (default: $PRUNEBENCH_DATA)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results as a Markdown table here")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.only = chosen
    return args


def run_selected(args: argparse.Namespace, console: Console) -> list[Result]:
    results: list[Result] = []
    for name in args.only:
        console.print(f"[bold]running {name}[/bold]{' (quick)' if args.quick else ''} ...")
        if name == "step":
            results += step_overhead.run(args.quick, args.clock)
        elif name == "select":
            results += selection.run(args.quick, args.threads, args.clock)
        else:
            results += epoch.run(args.quick, args.data_dir, args.clock)
    return results


def print_table(results: list[Result], console: Console) -> None:
    """Figures in a table; the longer details are numbered notes below it."""
    table = Table(title="prunebench core benchmarks")
    for column in ("#", "benchmark", "figure", "measured [IQR]", "floor", "target", "status"):
        table.add_column(column, overflow="fold")
    for number, r in enumerate(results, 1):
        table.add_row(
            str(number), r.benchmark, r.name, r.measured_text(), r.floor_text(), r.target_text(),
            f"[{STYLE[r.status]}]{r.status}[/]",
        )
    console.print(table)
    for number, r in enumerate(results, 1):
        console.print(f"  {number}. {r.detail}", highlight=False)
        if r.floor_note:
            console.print(f"     floor: {r.floor_note}", highlight=False)


def package_location() -> str:
    """Where the timed prunebench lives, relative to the repository when inside it: a result
    file names no machine's directories."""
    package = Path(prunebench.__file__).resolve().parent
    repo = Path(__file__).resolve().parents[1]
    return str(package.relative_to(repo)) if package.is_relative_to(repo) else f"installed ({package.name})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    console = Console(width=max(Console().width, 120))
    env = {**environment(args.threads, args.clock), "prunebench": package_location()}
    console.print("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    results = run_selected(args, console)
    print_table(results, console)
    if args.json:
        args.json.write_text(json_report(results, env, command.strip()) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown_report(results, env, command.strip()))
    return 1 if any(r.status == "miss" for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
