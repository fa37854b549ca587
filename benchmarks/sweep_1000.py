"""A 1,000-run sweep with three workers killed mid-sweep, checked for exactly-once runs; its readers timed.

After the sweep and its rerun, ``prunebench results`` and ``prunebench report`` are timed on its database.

    python benchmarks/sweep_1000.py [--executor local] [--workers 2] [--kills 3] [--seed 0] [--keep DIR]

The sweep is the cheapest real one prunebench has: the MLP on the embedded digits data (no
files), 8 method curves (4 strategies x 2 scopes) at 11 compression levels and 10 seeds, plus
the random control at every level and seed and one dense model per seed: 10 x (8 x 11 + 11 + 1)
= 1,000 runs. ``prunebench run`` runs it in a subprocess; at three completion counts drawn at
random (``--seed``) one worker process of the executor is sent SIGKILL, as the OOM killer would.
Then the same command runs again, so it resumes, and the results directory is checked:

- the database holds one row per planned run, each run id once, every row completed;
- one run folder per pruned run and one dense folder per dense run, nothing else, no temp file;
- no run was computed twice: a run started more than once was in flight when a worker was
  killed (or failed there and was resumed), a result file already written when its worker died
  is the one the run ends with (reused, not recomputed), and the rerun left every run the first
  command completed untouched (same attempts, same result file bytes).

Then ``prunebench results`` (target < 5 s) and ``prunebench report`` (target < 60 s) are timed
as a user runs them (a fresh process each, interpreter start included). Exit status 1 when a
check fails or a figure misses its target.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing: the library beside this file
    sys.path.insert(0, str(SRC))

from prunebench.plan.sweep import plan_from_mapping  # noqa: E402

STRATEGIES = ["magnitude", "grad_magnitude", "act_magnitude", "snip"]
SCOPES = ["global", "layer"]
LEVELS = [2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24]  # the MLP's unprunable biases cap it at 30.4x
SEEDS = 10
RESULTS_TARGET_S = 5.0
REPORT_TARGET_S = 60.0
POLL_S = 0.2


def sweep_config(strategies: Sequence[str] = tuple(STRATEGIES), scopes: Sequence[str] = tuple(SCOPES),
                 levels: Sequence[float] = tuple(LEVELS), seeds: int = SEEDS) -> dict[str, Any]:
    """The digits/MLP sweep: ``seeds x (len(strategies) x len(scopes) x len(levels) + len(levels) + 1)`` runs.

    Short recipes (10 dense epochs, 1 fine-tuning epoch): the benchmark measures the sweep's
    bookkeeping, not training."""
    return {
        "dataset": "digits",
        "model": "mlp",
        "train": {"epochs": 10, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001, "batch_size": 64},
        "finetune": {"epochs": 1, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64},
        "sweep": {
            "prune.strategy": list(strategies),
            "prune.scope": list(scopes),
            "prune.compression": list(levels),
            "seed": list(range(seeds)),
        },
    }


# --- the processes of a running sweep ---------------------------------------------------------

def stat_of(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of ``pid``, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0]


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := stat_of(int(entry))) is not None and found[1] != "Z":
            parents[int(entry)] = found[0]
    result: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - result
        result |= frontier
    return result


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_worker(executor: str, line: str) -> bool:
    """Whether a process below the driver runs jobs: a pool worker (``local``), a Ray task worker
    (``ray``: its command line is ``ray::<task>``; idle workers and Ray's own agents excluded)."""
    if executor == "local":
        return "multiprocessing" in line and "spawn_main" in line and "resource_tracker" not in line
    if executor == "ray":
        return line.startswith("ray::") and not line.startswith(("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent"))
    raise ValueError(f"no worker processes to kill under executor {executor!r}")


def workers_of(driver: int, executor: str) -> list[int]:
    return sorted(pid for pid in descendants(driver) if is_worker(executor, cmdline(pid)))


# --- the results database and folder, read only -------------------------------------------------

def db_rows(results: Path) -> dict[str, dict[str, Any]]:
    """run_id -> {status, attempts, kind, dense_id}; empty before the database exists."""
    path = results / "prunebench.db"
    if not path.is_file():
        return {}
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as conn:
            fetched = conn.execute("SELECT run_id, status, attempts, kind, dense_id FROM runs").fetchall()
    except sqlite3.OperationalError:  # created but not yet holding the table
        return {}
    return {r[0]: {"status": r[1], "attempts": r[2], "kind": r[3], "dense_id": r[4]} for r in fetched}


def row_count(results: Path) -> tuple[int, int]:
    """(rows, distinct run ids) as SQL counts them."""
    with closing(sqlite3.connect(f"{(results / 'prunebench.db').resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone()


def record_file(results: Path, run_id: str, row: dict[str, Any]) -> Path:
    """The file whose presence marks the run done: result.json, or a dense model's dense.json."""
    if row["kind"] == "dense":
        return results / "dense" / str(row["dense_id"]) / "dense.json"
    return results / run_id / "result.json"


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def record_digests(results: Path, rows: dict[str, dict[str, Any]], run_ids: Sequence[str]) -> dict[str, str | None]:
    return {run_id: digest(record_file(results, run_id, rows[run_id])) for run_id in run_ids if run_id in rows}


# --- the sweep, its kills and its rerun ---------------------------------------------------------

@dataclass
class Kill:
    at_completed: int  # completed rows when the worker was killed
    pid: int
    in_flight: list[str]  # run ids 'running' in the database from the kill until fresh workers appear
    written: dict[str, str | None]  # their record files' digests right after the kill (None: not written)


@dataclass
class Pass:
    returncode: int
    wall_s: float
    rows: dict[str, dict[str, Any]]
    digests: dict[str, str | None]
    kills: list[Kill] = field(default_factory=list)


def run_command(config: Path, results: Path, executor: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "prunebench.cli", "run", str(config), "--results", str(results),
            "--executor", executor, "--workers", str(workers)]


def run_sweep(command: list[str], results: Path, log: Path, executor: str, kill_at: Sequence[int],
              rng: random.Random, timeout_s: float) -> Pass:
    """Run ``command``; when the completed rows reach each count in ``kill_at``, SIGKILL one worker."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    kills: list[Kill] = []
    pending = sorted(kill_at)
    with log.open("a") as out:
        driver = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            while driver.poll() is None:
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"the sweep took more than {timeout_s:.0f} s (log: {log})")
                time.sleep(POLL_S)
                if not pending:
                    continue
                rows = db_rows(results)
                completed = sum(r["status"] == "completed" for r in rows.values())
                workers = workers_of(driver.pid, executor) if completed >= pending[0] else []
                if not workers:  # not there yet, or a broken pool is being replaced
                    continue
                in_flight = {run_id for run_id, r in rows.items() if r["status"] == "running"}
                victim = rng.choice(workers)
                os.kill(victim, signal.SIGKILL)
                written = record_digests(results, rows, sorted(in_flight))  # before any rerun can rewrite them
                # A job the driver handed to the dying pool just after the kill (its other job had just
                # ended) is lost with it too: collect what is 'running' until the fresh workers appear.
                # Jobs lost with a pool stay 'running' until they are run again alone on the fresh one.
                deadline = time.perf_counter() + 120
                while driver.poll() is None and time.perf_counter() < deadline:
                    rows = db_rows(results)
                    late = {run_id for run_id, r in rows.items() if r["status"] == "running"} - in_flight
                    written |= record_digests(results, rows, sorted(late))
                    in_flight |= late
                    if set(workers_of(driver.pid, executor)) - set(workers):
                        break
                    time.sleep(0.05)
                kills.append(Kill(completed, victim, sorted(in_flight), written))
                pending.pop(0)
            driver.wait()
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    wall = time.perf_counter() - started
    rows = db_rows(results)
    return Pass(driver.returncode, wall, rows, record_digests(results, rows, list(rows)), kills)


def check_exactly_once(results: Path, expected: dict[str, str], first: Pass, second: Pass) -> tuple[int, list[str]]:
    """(runs that completed exactly once, problems found). ``expected``: run id -> kind, from the plan."""
    problems: list[str] = []
    rows = second.rows
    total, distinct = row_count(results)
    if total != len(expected) or distinct != total:
        problems.append(f"database: {total} rows, {distinct} distinct run ids; planned {len(expected)}")
    if set(rows) != set(expected):
        problems.append(f"database: {len(set(expected) - set(rows))} planned runs missing, "
                        f"{len(set(rows) - set(expected))} unplanned rows")
    not_done = sorted(run_id for run_id, r in rows.items() if r["status"] != "completed")
    if not_done:
        problems.append(f"{len(not_done)} runs not completed after the rerun, e.g. {not_done[0]}")

    pruned = {run_id for run_id, kind in expected.items() if kind == "pruned"}
    dense = {str(r["dense_id"]) for run_id, r in rows.items() if expected.get(run_id) == "dense"}
    folders = {p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")} - {"dense", "report"}
    if folders != pruned:
        problems.append(f"run folders: {len(folders)} for {len(pruned)} pruned runs "
                        f"({len(folders - pruned)} unplanned, {len(pruned - folders)} missing)")
    dense_folders = {p.name for p in (results / "dense").iterdir() if p.is_dir()} if (results / "dense").is_dir() else set()
    if dense_folders != dense:
        problems.append(f"dense folders: {len(dense_folders)} for {len(dense)} dense runs")
    temps = [p for p in results.rglob(".*.tmp")]
    if temps:
        problems.append(f"{len(temps)} temp files left, e.g. {temps[0]}")
    for run_id in sorted(pruned & folders):
        try:
            named = json.loads((results / run_id / "result.json").read_text()).get("run_id")
        except (OSError, ValueError):
            named = None
        if named != run_id:
            problems.append(f"{run_id}/result.json names run {named!r}")

    # Computed once: a second start needs a reason, and a result written before a kill is kept.
    in_flight = {run_id for kill in first.kills for run_id in kill.in_flight}
    not_completed_first = {run_id for run_id, r in first.rows.items() if r["status"] != "completed"}
    twice: set[str] = set()
    for run_id, row in rows.items():
        if row["attempts"] > 1 and run_id not in in_flight and run_id not in not_completed_first:
            problems.append(f"{run_id}: started {row['attempts']} times, but it was in flight at no kill")
            twice.add(run_id)
    for kill in first.kills:
        for run_id, written in kill.written.items():
            if written is not None and second.digests.get(run_id) != written:
                problems.append(f"{run_id}: its result was written before the kill of {kill.pid}, then computed again")
                twice.add(run_id)
    for run_id, row in first.rows.items():
        if row["status"] != "completed":
            continue
        if rows.get(run_id, {}).get("attempts") != row["attempts"] or second.digests.get(run_id) != first.digests[run_id]:
            problems.append(f"{run_id}: completed by the first command, then run again by the rerun")
            twice.add(run_id)
    once = sum(1 for run_id, r in rows.items() if r["status"] == "completed" and run_id not in twice
               and run_id in expected and second.digests.get(run_id) is not None)
    return once, problems


# --- timing the readers -----------------------------------------------------------------------

def timed(command: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system) of each of ``repeats`` runs of ``command``.

    Wall time is what a user waits; on a shared machine it also counts the time spent waiting for
    a core, so the CPU time the command itself used is printed beside it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return walls, cpus


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def kill_points(total: int, kills: int, rng: random.Random) -> list[int]:
    """Completion counts at which to kill, drawn between 10% and 90% of the sweep, apart from each other."""
    low, high = max(1, total // 10), max(2, total * 9 // 10)
    return sorted(rng.sample(range(low, high), kills)) if kills else []


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="where the runs run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)")
    parser.add_argument("--kills", type=int, default=3, help="workers to kill during the first command")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="sweep seeds (10: 1,000 runs)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill points and the workers killed")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the config, results and logs here and keep them (default: a temp folder, removed)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the first command may take")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--readers-only", type=Path, default=None, metavar="RESULTS",
                        help="no sweep: time `results` and `report` again on a results directory kept by --keep")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seeds < 1 or args.kills < 0:
        parser.error("--workers and --seeds must be at least 1, --kills at least 0")
    return args


Figure = tuple[str, float, str, bool, str]  # name, measured, target, met, note


def reader_figures(results: Path) -> list[Figure]:
    """``prunebench results`` three times (the median counts) and ``prunebench report`` once."""
    cli = [sys.executable, "-m", "prunebench.cli"]
    results_s, results_cpu = timed([*cli, "results", "--results", str(results)], 3)
    report_s, report_cpu = timed([*cli, "report", "--results", str(results), "--out", str(results / "report")], 1)
    results_wall = statistics.median(results_s)
    return [
        ("`prunebench results` (s)", results_wall, f"< {RESULTS_TARGET_S:g}", results_wall < RESULTS_TARGET_S,
         f"wall, median of {', '.join(f'{t:.2f}' for t in results_s)}; CPU {', '.join(f'{t:.2f}' for t in results_cpu)}"),
        ("`prunebench report` (s)", report_s[0], f"< {REPORT_TARGET_S:g}", report_s[0] < REPORT_TARGET_S,
         f"wall; CPU {report_cpu[0]:.2f}"),
    ]


def print_figures(figures: Sequence[Figure]) -> None:
    print(f"load average after: {load()}")
    print(f"{'figure':<38}{'measured':>10}  {'target':<10}status")
    for name, value, target, met, note in figures:
        status = ("pass" if met else "MISS") if target != "-" else "info"
        print(f"{name:<38}{value:>10.2f}  {target:<10}{status}{'  (' + note + ')' if note else ''}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the driver this started is ended too (run_sweep's finally)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.readers_only is not None:
        if not (args.readers_only / "prunebench.db").is_file():
            print(f"sweep_1000: error: --readers-only: no prunebench.db in {args.readers_only}", file=sys.stderr)
            return 2
        print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {load()} "
              "(shared machine: other work runs beside this)")
        print(f"database: {row_count(args.readers_only)[0]} rows in {args.readers_only}")
        figures = reader_figures(args.readers_only)
        print_figures(figures)
        return 0 if all(met for *_, met, _ in figures) else 1
    rng = random.Random(args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="sweep1000-"))
    work.mkdir(parents=True, exist_ok=True)
    config, results, log = work / "sweep-1000.yaml", work / "results", work / "sweep.log"
    if results.exists():
        print(f"sweep_1000: error: {results} exists: the benchmark starts from an empty results directory", file=sys.stderr)
        return 2
    mapping = sweep_config(seeds=args.seeds)
    config.write_text(yaml.safe_dump(mapping, sort_keys=False))
    plan = plan_from_mapping(mapping)
    expected = {job.run_id: job.kind for job in plan.jobs}
    command = run_command(config, results, args.executor, args.workers)
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; {args.executor} executor, {args.workers} workers x "
          f"{threads} torch thread(s); load average {load()} (shared machine: other work runs beside this)")
    print(f"sweep: {len(plan.jobs)} runs ({len(plan.dense_jobs)} dense, {len(plan.pruned_jobs)} pruned); "
          f"command: {' '.join(command[2:])}")
    try:
        points = kill_points(len(plan.jobs), args.kills, rng)
        first = run_sweep(command, results, log, args.executor, points, rng, args.timeout)
        if first.returncode == 2:  # refused before it ran: nothing to check
            print(log.read_text()[-2000:], file=sys.stderr)
            return 1
        for kill in first.kills:
            print(f"killed worker {kill.pid} at {kill.at_completed} completed runs; in flight: {len(kill.in_flight)} "
                  f"({sum(d is not None for d in kill.written.values())} with a result already written)")
        statuses = statistics.multimode([r["status"] for r in first.rows.values()])
        print(f"first command: exit {first.returncode}, {first.wall_s:.1f} s; "
              f"{sum(r['status'] == 'completed' for r in first.rows.values())} completed, most common status {statuses}")
        second = run_sweep(command, results, log, args.executor, [], rng, args.timeout)
        reran = sum(second.rows[k]["attempts"] != first.rows.get(k, {}).get("attempts") for k in second.rows)
        print(f"rerun (resume): exit {second.returncode}, {second.wall_s:.1f} s; {reran} runs started again")
        once, problems = check_exactly_once(results, expected, first, second)
        figures = [
            ("runs completed exactly once", float(once), f"== {len(plan.jobs)}", once == len(plan.jobs), ""),
            *reader_figures(results),
            ("sweep wall time, with the kills (s)", first.wall_s, "-", True, f"{args.kills} workers killed"),
            ("rerun wall time (s)", second.wall_s, "-", True, f"{reran} runs started again"),
        ]
        print_figures(figures)
        for problem in problems[:20]:
            print(f"problem: {problem}")
        if args.json:
            args.json.write_text(json.dumps({
                "command": " ".join(sys.argv), "cpu": cpu_model(), "cores": os.cpu_count(), "workers": args.workers,
                "threads_per_worker": threads, "load_after": load(), "runs": len(plan.jobs),
                "kills": [vars(k) | {"written": len([d for d in k.written.values() if d])} for k in first.kills],
                "figures": {name: value for name, value, *_ in figures}, "problems": problems,
            }, indent=2))
        return 0 if not problems and all(met for *_, met, _ in figures) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
