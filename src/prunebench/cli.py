"""The ``prunebench`` command: parses, validates, calls the library. Nothing else lives here."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from prunebench.errors import Interrupted, PrunebenchError

DEFAULT_RESULTS = Path("prunebench-results")
SLURM_FOLDER = ".slurm"  # submitit's job folder (pickled runs, logs) inside the results directory
LISTABLE = ("strategies", "models", "datasets", "schedules", "retrain-modes")
EXIT_INPUT_ERROR = 2
EXIT_RUNS_FAILED = 1
# The machine's storage refused a write: full, over a quota or a file-size limit, read-only, failing.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)

DEMO_TIME = "about 30 s on 2 idle cores"  # 25.5 s and 26.2 s wall, two idle runs on an AMD EPYC


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults beside every option that has one, and the examples (epilog) as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if "(default" in (action.help or "") or action.default is None or action.default is False or action.default == []:
            return action.help  # says its default itself, or has none worth printing
        return super()._get_help_string(action)


def examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("prunebench")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunebench", description="Comparable, honest pruning benchmarks.", formatter_class=HelpFormatter,
        epilog=examples("prunebench demo", "prunebench run configs/digits-mlp.yaml prune.compression=16",
                        "prunebench report --out report"),
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print results and errors (also after the command)")
    parser.add_argument("--version", action="version", version=f"prunebench {version()}")
    # -q after the subcommand too; SUPPRESS leaves the value given before it (or False) in place
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only print results and errors")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, *example: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[quiet], formatter_class=HelpFormatter,
                                   epilog=examples(*example))

    run = command("run", "run the experiment or sweep a YAML config describes",
                  "prunebench run configs/digits-mlp.yaml seed=1 'sweep.prune.compression=[2,8]' --workers 2")
    run.add_argument("config", type=Path, help="a YAML config (docs/config.md)")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. prune.compression=16 seed=1")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    run.add_argument("--executor", choices=("serial", "local", "ray", "slurm"), default="local", help="where the runs run")
    run.add_argument("--workers", type=int, default=None,
                     help="parallel runs (default: one per core; slurm: as many as the cluster schedules)")
    run.add_argument("--ray-address", default=None, help="Ray cluster to join (default: start a local Ray)")
    run.add_argument("--cpus-per-run", type=int, default=1, help="Ray, SLURM: CPUs each run asks for")
    run.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray, SLURM: GPUs each run asks for (set device: cuda)")
    run.add_argument("--slurm-partition", default=None, help="SLURM: partition (default: the cluster's)")
    run.add_argument("--slurm-time", type=int, default=60, metavar="MINUTES", help="SLURM: time limit of each run")
    run.add_argument("--slurm-mem-gb", type=float, default=None, help="SLURM: memory of each run (default: the cluster's)")
    run.add_argument("--slurm-cluster", choices=("slurm", "local"), default="slurm",
                     help="local: run the array's tasks as processes of this machine (to try a setup)")
    add_plugin_flag(run)

    listing = command("list", "list registered strategies, models, datasets, schedules or retraining modes",
                      "prunebench list strategies")
    listing.add_argument("what", nargs="?", choices=LISTABLE, help="one kind (default: all)")
    add_plugin_flag(listing)

    results = command("results", "one row per run from the results database", "prunebench results --format csv > runs.csv")
    results.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    results.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")

    report = command("report", "figures, tables, statistics and an HTML report",
                     "prunebench report --results prunebench-results --out report")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    report.add_argument("--out", type=Path, required=True, help="folder for report.html, figures and tables")

    demo = command("demo", f"a small sweep on digits, then its report ({DEMO_TIME})", "prunebench demo --results demo-results")
    demo.add_argument("--results", type=Path, default=DEFAULT_RESULTS / "demo", help="results directory")
    demo.add_argument("--executor", choices=("serial", "local"), default="serial", help="serial: its runs are too short to repay starting worker processes")

    export = command("export", "write a language-model run's pruned model as a Hugging Face directory",
                     "prunebench export 3f2a --results prunebench-results --out pruned-model")
    export.add_argument("run", metavar="RUN", help="run id, or a prefix naming one run (prunebench results lists them)")
    export.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    export.add_argument("--out", type=Path, required=True, help="new or empty folder for config, weights and tokenizer")

    tasks = command("tasks", "write the zero-shot Wikipedia tasks as lm-eval task files (--include_path)",
                    "prunebench tasks --out lm-eval-tasks --items 500",
                    "lm_eval --model hf --model_args pretrained=DIR --include_path lm-eval-tasks --tasks prunebench_wiki")
    tasks.add_argument("--out", type=Path, required=True, help="folder for the YAML and JSONL files")
    tasks.add_argument("--task", action="append", default=None, metavar="TASK",
                       help="closed_book, open_book, topic or cloze (repeatable; default: all four)")
    tasks.add_argument("--items", type=int, default=None,
                       help="the first N items of each task, as evaluation.task_items takes them (default: all)")

    prune_lm = command("prune-lm", "prune a language model block by block from its weight files into a new checkpoint "
                       "folder (memory: embeddings, one block, activations)",
                       "prunebench prune-lm hf:Llama-3.2-1B --out llama-wanda50 --strategy wanda --sparsity 0.5")
    prune_lm.add_argument("model", help="smollm2-135m, hf:<folder with safetensors> or hf:<file.gguf>")
    prune_lm.add_argument("--out", type=Path, required=True, help="a new folder for the pruned checkpoint")
    prune_lm.add_argument("--strategy", default="wanda", help="magnitude, wanda, sparsegpt, obs or random")
    prune_lm.add_argument("--sparsity", type=float, default=None, help="fraction pruned (unstructured)")
    prune_lm.add_argument("--structure", default="unstructured", help="unstructured or N:M, e.g. 2:4")
    prune_lm.add_argument("--scope", choices=("row", "layer"), default=None, help="default: the strategy's")
    prune_lm.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="prune.options, e.g. blocksize=64")
    prune_lm.add_argument("--dataset", default="shakespeare", help="calibration text: shakespeare, text:<path>, wikitext2")
    prune_lm.add_argument("--n-samples", type=int, default=128, help="calibration sequences")
    prune_lm.add_argument("--seq-len", type=int, default=2048, help="tokens per calibration sequence")
    prune_lm.add_argument("--seed", type=int, default=0, help="draws the calibration sequences and breaks ties")
    prune_lm.add_argument("--batch-size", type=int, default=8, help="calibration sequences per forward pass")
    prune_lm.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default $PRUNEBENCH_DATA)")
    prune_lm.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    reproduce = command("reproduce", "reproduce a published result and check it (see --list)",
                        "prunebench reproduce --list", "prunebench reproduce NAME --seeds 3")
    reproduce.add_argument("name", nargs="?", help="the reproduction to run")
    reproduce.add_argument("--list", action="store_true", help="list the reproductions")
    reproduce.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    reproduce.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    reproduce.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default $PRUNEBENCH_DATA)")
    reproduce.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help="import a module or .py file that registers strategies, models or datasets (repeatable)",
    )


def command_prune_lm(args: argparse.Namespace, console: Console) -> int:
    import torch
    import yaml

    from prunebench.errors import ConfigError
    from prunebench.experiment.lm_blocks import prune_lm_blocks

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: give KEY=VALUE")
        options[key] = yaml.safe_load(value)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    outcome = prune_lm_blocks(
        args.model, args.out, strategy=args.strategy, sparsity=args.sparsity, structure=args.structure,
        scope=args.scope, options=options, dataset=args.dataset, n_samples=args.n_samples, seq_len=args.seq_len,
        seed=args.seed, batch_size=args.batch_size, data_dir=args.data_dir,
    )
    pruned = sum(outcome.layer_sparsity.values()) / max(len(outcome.layer_sparsity), 1)
    console.print(f"{escape(str(outcome.folder))}: {len(outcome.layer_sparsity)} Linear layers pruned, "
                  f"{100 * pruned:.1f}% on average, in {outcome.seconds:.1f} s")
    return 0


def command_run(args: argparse.Namespace, console: Console) -> int:
    from prunebench.spec import read_config
    from prunebench.executors import SlurmSettings, make_executor
    from prunebench.plan.runner import run_plan
    from prunebench.plan.sweep import plan_from_mapping
    from prunebench.plugins import CONFIG_KEY, all_plugins
    from prunebench.store import ResultsDB

    data = read_config(args.config, args.overrides)
    data[CONFIG_KEY] = all_plugins(args.plugin, data)  # before validation: the plan names their strategies
    plan = plan_from_mapping(data)
    executor_name = "serial" if len(plan.pruned_jobs) == 1 and args.executor == "local" else args.executor
    slurm = SlurmSettings(
        folder=(args.results / SLURM_FOLDER).resolve(), partition=args.slurm_partition, time_min=args.slurm_time,
        mem_gb=args.slurm_mem_gb, cluster=args.slurm_cluster,
    )
    executor = make_executor(
        executor_name, args.workers, address=args.ray_address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
        slurm=slurm,
    )
    try:
        statuses = run_plan(plan, args.results, executor)
    finally:
        executor.close()  # also when preflight refuses the plan: a Ray started for it is shut down
    if not plan.is_sweep:
        row = next(r for r in ResultsDB(args.results).rows() if r["run_id"] == plan.pruned_jobs[0].run_id)
        if row["result"]:
            r = row["result"]
            if r.accuracy is None:  # a language model
                quality = (f"perplexity {r.perplexity:.3f} (dense {r.dense_perplexity:.3f}, right after pruning "
                           f"{r.pre_finetune_perplexity:.3f}), sparsity {r.sizes.sparsity:.1%}")
            else:
                quality = (f"top-1 {r.accuracy.top1:.2%} (dense {r.accuracy.dense_top1:.2%}, before retraining "
                           f"{r.accuracy.pre_retrain_top1:.2%})")
            console.print(
                f"run {r.run_id}: {quality}, compression {r.sizes.compression_ratio:.2f}x, "
                f"theoretical speedup {r.macs.theoretical_speedup:.2f}x"
                + (f"; compressed: storage {r.sizes.storage_compression_ratio:.1f}x smaller, "
                   f"top-1 {r.accuracy.quantized_top1:.2%}" if r.storage is not None else "")
            )
            console.print(f"result: {args.results / r.run_id / 'result.json'}", soft_wrap=True)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    console.print(f"{len(plan.jobs)} runs: {summary}; database {args.results / 'prunebench.db'}", soft_wrap=True)
    incomplete = sum(n for s, n in statuses.items() if s != "completed")
    if incomplete:
        mine = {job.run_id for job in plan.jobs}  # an earlier command's failures are not this one's
        for row in ResultsDB(args.results).rows():
            if row["status"] != "completed" and row["run_id"] in mine:
                # escaped: an error's install hint holds brackets (prunebench[structured]) rich would eat
                console.print(f"[red]{row['status']}[/red] {row['run_id']}: {escape(str(row['error']))}", highlight=False)
        return EXIT_RUNS_FAILED
    return 0


def command_list(args: argparse.Namespace, console: Console) -> int:
    from prunebench.catalog import RETRAIN_MODES, SCHEDULES
    from prunebench.spec import PruneSpec, RetrainSpec
    from prunebench.data import DATASETS
    from prunebench.models import MODELS
    from prunebench.plugins import load_plugins
    from prunebench.catalog import lm_models, strategies, text_datasets
    from prunebench.pruning.scores import MODEL_KINDS

    load_plugins(args.plugin, "--plugin")
    STRATEGIES = strategies()

    def schedule_line(name: str) -> str:
        schedule = SCHEDULES.get(name)
        line = f"  {name}: {schedule.description}"
        if schedule.section:
            defaults = PruneSpec.model_fields[schedule.section].get_default(call_default_factory=True)
            options = ", ".join(f"{k}={v!r}" for k, v in defaults.model_dump().items())
            line += f" (prune.{schedule.section}: {options})"
        return line

    def strategy_line(name: str) -> str:
        strategy = STRATEGIES.get(name)
        fields = dataclasses.fields(strategy.options_type)
        defaults = strategy.options_type()
        options = ", ".join(f"prune.options.{f.name}={getattr(defaults, f.name)!r}" for f in fields) or "no options"
        forms = [form.summary() for form in map(strategy.form, MODEL_KINDS) if form is not None]
        return f"  {name}: {strategy.description} ({'; '.join(forms)}; {options})"

    def mode_line(name: str) -> str:
        mode = RETRAIN_MODES.get(name)
        defaults = RetrainSpec()
        settings = ", ".join(f"retrain.{k}={getattr(defaults, k)!r}" for k in mode.settings) or "no settings"
        rounds = getattr(mode, "round_settings", ())
        if rounds:
            settings += f"; iterative rounds rewind to {', '.join(f'retrain.{k}' for k in rounds)}"
        return f"  {name}: {mode.description} (schedules: {', '.join(mode.schedules)}; {settings})"

    lines = {
        "strategies": ["strategies (prune.strategy):", *map(strategy_line, STRATEGIES.names())],
        "models": [f"models: {', '.join(MODELS.names())}",
                   f"language models: {', '.join(lm_models().names())}, hf:<directory, .gguf file or hub id>"],
        "datasets": [f"datasets: {', '.join(DATASETS.names())}",
                     f"text corpora (language models): {', '.join(n for n in text_datasets().names() if not n.endswith(':'))}, "
                     "text:<file or folder>"],
        "schedules": ["schedules (prune.schedule):", *map(schedule_line, SCHEDULES.names())],
        "retrain-modes": ["retraining modes (retrain.mode):", *map(mode_line, RETRAIN_MODES.names())],
    }
    for what in [args.what] if args.what else LISTABLE:
        for line in lines[what]:
            console.print(line, highlight=False, soft_wrap=True)
    return 0


def command_results(args: argparse.Namespace, console: Console) -> int:
    from prunebench.report.results import format_results, results_rows

    print(format_results(results_rows(args.results), args.format), end="")
    return 0


def command_report(args: argparse.Namespace, console: Console) -> int:
    from prunebench.report.write import write_report
    from prunebench.store.db import check_writable_dir

    check_writable_dir(args.out, "--out")
    html = write_report(args.results, args.out)
    console.print(f"report: {html}", soft_wrap=True)
    return 0


def command_export(args: argparse.Namespace, console: Console) -> int:
    from prunebench.experiment.export import export_run

    out = export_run(args.results, args.run, args.out)
    console.print(f"exported: {out} (load with transformers' AutoModelForCausalLM.from_pretrained)", soft_wrap=True)
    return 0


def command_demo(args: argparse.Namespace, console: Console) -> int:
    from prunebench.demo import run_demo

    return run_demo(args.results, args.executor, console)


def command_tasks(args: argparse.Namespace, console: Console) -> int:
    from prunebench.data.lm_eval_tasks import write_lm_eval_tasks
    from prunebench.data.wiki_tasks import TASKS

    written = write_lm_eval_tasks(args.out, args.task or TASKS, args.items)
    console.print(f"lm-eval tasks: {len(written)} files in {args.out.resolve()}", soft_wrap=True)
    return 0


def command_reproduce(args: argparse.Namespace, console: Console) -> int:
    from prunebench.errors import ConfigError
    from prunebench.reproduce import list_reproductions, run_reproduction, run_settings
    from prunebench.store.db import check_writable_dir

    known = list_reproductions()
    if args.name and args.name not in known:
        close = difflib.get_close_matches(args.name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown reproduction {args.name!r}{hint} (known: {', '.join(sorted(known))})")
    if args.list or not args.name:
        for name, summary in known.items():
            console.print(f"{name}: {summary}")
        if not args.list:
            raise ConfigError("name a reproduction to run (listed above), or pass --list")
        return 0
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise ConfigError(f"--data-dir: {args.data_dir} is a file, not a directory")
    check_writable_dir(args.results, "--results")
    settings = run_settings(args.data_dir, args.threads)
    report = run_reproduction(args.name, args.seeds, settings, args.results)
    report.print(console)
    console.print(f"report: {args.results / 'reproduce' / args.name / 'report.md'}", soft_wrap=True)
    return 0 if report.passed else EXIT_RUNS_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling `overrides` at the first option: `run c.yaml --results r seed=1`
    # leaves `seed=1` over; overrides may come anywhere after the config, anything else is an error
    if args.command == "run":
        args.overrides = [*args.overrides, *(e for e in extra if not e.startswith("-"))]
        extra = [e for e in extra if e.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    console = Console()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr,
    )
    handlers = {
        "run": command_run, "list": command_list, "results": command_results,
        "report": command_report, "export": command_export, "demo": command_demo, "reproduce": command_reproduce,
        "tasks": command_tasks, "prune-lm": command_prune_lm,
    }
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        return handlers[args.command](args, console)
    except PrunebenchError as exc:
        print(f"prunebench: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""  # prunebench's writers name the file
        print(f"prunebench: error: {where}{exc.strerror}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: one line, no traceback; the runner has cleaned up
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        done = f"{exc.summary}; " if isinstance(exc, Interrupted) and exc.summary else ""
        print(f"prunebench: interrupted ({signal.Signals(signum).name}): {done}"
              "rerun the same command to resume", file=sys.stderr)
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_interrupted(signum: int, frame: object) -> None:
    """SIGTERM takes the path Ctrl-C takes: workers ended, the database consistent, one line."""
    raise Interrupted(signum)


if __name__ == "__main__":
    sys.exit(main())
