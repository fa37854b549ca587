"""Executors: the job-function contract, workers that die with the driver, interrupts, private Ray."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from prunebench.cli import main
from prunebench.errors import TrainingDiverged
from prunebench.executors import Outcome, make_executor
from prunebench.executors.reaper import stat_of
from prunebench.experiment.pipeline import stored_result
from prunebench.plan.jobs import run_job
from prunebench.plan.sweep import plan_from_mapping
from prunebench.store import ResultsDB

SRC = Path(__file__).resolve().parents[1] / "src" / "prunebench"
SMALL = {"dataset": "synthetic", "model": "mlp", "threads": 1,
         "train": {"epochs": 1, "batch_size": 64}, "finetune": {"epochs": 1, "batch_size": 64}}


def square(x: int) -> dict[str, int]:
    return {"value": x * x}


def fails(x: int) -> dict[str, int]:
    if x == 2:
        raise TrainingDiverged("loss became nan")
    raise ValueError(f"bad {x}")


def collect(name: str, fn, jobs: list[int]) -> tuple[list[int], dict[int, Outcome]]:
    started: list[int] = []
    done: dict[int, Outcome] = {}
    executor = make_executor(name, workers=2)
    try:
        executor.run(jobs, fn, started.append, done.__setitem__)
    finally:
        executor.close()
    return started, done


@pytest.mark.parametrize("name", ["serial", pytest.param("local", marks=pytest.mark.slow)])  # local: a process pool
def test_executors_run_any_job_function_and_capture_failures(name: str) -> None:
    started, done = collect(name, square, [1, 2, 3])
    assert sorted(started) == [1, 2, 3]
    assert {k: (o.status, o.result) for k, o in done.items()} == {
        1: ("completed", {"value": 1}), 2: ("completed", {"value": 4}), 3: ("completed", {"value": 9})}
    _, failed = collect(name, fails, [1, 2])
    assert failed[2] == Outcome("diverged", error="loss became nan")
    assert failed[1].status == "failed" and failed[1].error is not None
    assert failed[1].error.startswith("ValueError: bad 1 (test_executors.py:")


def dies_or_sleeps(x: int) -> dict[str, int]:
    """Job 0 kills its own worker (as the OOM killer would) once the other job is under way."""
    if x == 0:
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(3.0)
    return {"value": x}


def test_a_dying_worker_fails_only_its_own_run() -> None:
    """A worker's death breaks the whole pool: the runs in flight are run again one at a time, so
    the one that kills its worker again is failed alone and the other completes."""
    started, done = collect("local", dies_or_sleeps, [0, 1])
    assert done[1] == Outcome("completed", {"value": 1})
    assert done[0].status == "failed" and done[0].error is not None and "worker process died" in done[0].error
    assert started.count(0) == 2  # run again alone after the first death, where it died again


def test_executors_import_neither_experiment_nor_config() -> None:
    paths = sorted((SRC / "executors").glob("*.py"))
    assert len(paths) >= 4, SRC  # base, local, ray, serial: a wrong folder would check nothing
    for path in paths:
        tree = ast.parse(path.read_text())
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in names if m.startswith(("prunebench.plan", "prunebench.experiment", "prunebench.config", "prunebench.spec"))], path.name


def test_an_in_process_job_leaves_torch_threads_as_it_found_them(tmp_path: Path) -> None:
    plan = plan_from_mapping(SMALL)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for job in plan.jobs:  # dense, then pruned
            returned = run_job(job, plan.settings, tmp_path)
            assert torch.get_num_threads() == 2
        # the job wrote its result where the runner reads it back, the record it returned
        pruned = plan.pruned_jobs[0]
        assert returned.run_id == pruned.run_id
        assert stored_result(pruned.spec, tmp_path) == returned
    finally:
        torch.set_num_threads(before)


def test_threads_beyond_the_bound_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "threads": 10**6}))
    assert main(["-q", "run", str(config), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prunebench: error: threads:") and "1024" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


# --- killing `prunebench run --executor local` -------------------------------------------------

def sweep_config(tmp_path: Path) -> Path:
    config = tmp_path / "sweep.yaml"
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "digits-mlp.yaml").read_text())
    base.update({"threads": 1, "train": {**base.get("train", {}), "epochs": 30},
                 "sweep": {"prune.compression": [2, 4, 8, 16], "seed": [0, 1]}})
    config.write_text(yaml.safe_dump(base))
    return config


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := stat_of(int(entry))) is not None and s[0] == pid:
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def files_under(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def start_sweep(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, set[int]]:
    results = tmp_path / "results"
    command = [sys.executable, "-m", "prunebench.cli", "run", str(sweep_config(tmp_path)),
               "--results", str(results), "--executor", "local", "--workers", "2"]
    # A suite run as a background job ignores SIGINT, and an ignored signal survives exec: give
    # the driver the default a terminal would, so the SIGINT test sends what Ctrl-C sends.
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(SRC.parent)},
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90
    workers: set[int] = set()
    while time.monotonic() < deadline:  # wait until the pool's workers train
        workers = {p for p in children_of(driver.pid) if b"multiprocessing" in command_line(p)
                   and b"resource_tracker" not in command_line(p)} if alive(driver.pid) else set()
        if len(workers) >= 1 and (results / "dense").is_dir():
            break
        time.sleep(0.1)
    assert workers, "the sweep must have a worker before it is killed"
    return driver, results, workers


@pytest.mark.slow  # a CLI sweep in a subprocess, killed once it trains, then 5 s of watching for writes
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_pool_workers_die_with_the_driver_and_write_nothing_after(tmp_path: Path, sig: signal.Signals) -> None:
    driver, results, workers = start_sweep(tmp_path)
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=30)
    time.sleep(0.5)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)]
    written = files_under(results)
    time.sleep(5)
    assert files_under(results) == written
    if sig == signal.SIGTERM:
        assert driver.returncode == 143, err[-3000:]
        lines = err.strip().splitlines()
        assert lines[-1].startswith("prunebench: interrupted (SIGTERM): ") and "rerun the same command" in lines[-1]
        assert "Traceback" not in err


@pytest.mark.slow  # a CLI sweep in a subprocess, interrupted once it trains
def test_sigint_prints_one_line_exits_130_and_leaves_the_rest_to_resume(tmp_path: Path) -> None:
    driver, results, _ = start_sweep(tmp_path)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("prunebench: interrupted (SIGINT): ") and "runs finished" in last
    assert "rerun the same command to resume" in last
    statuses = {r["status"] for r in ResultsDB(results).rows()}
    assert statuses - {"completed"} and statuses <= {"completed", "running", "pending"}  # stopped partway, nothing failed


# --- Ray -----------------------------------------------------------------------------------

def listening_inodes() -> dict[int, str]:
    """Socket inode -> local address of every listening TCP socket (IPv4 and IPv6)."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                found[int(fields[9])] = fields[1].split(":")[0]
    return found


def is_loopback(hex_address: str) -> bool:
    if len(hex_address) == 8:  # IPv4, little-endian bytes
        return bytes.fromhex(hex_address)[::-1][0] == 127
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # /proc prints IPv6 in 32-bit host-order words
    return words == bytes(15) + b"\x01" or (words[:12] == bytes(10) + b"\xff\xff" and words[12] == 127)


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def command_line(pid: int) -> bytes:
    """The process's command line, empty once it has exited (it can between listing and reading)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def descendants(root: int) -> set[int]:
    result: set[int] = set()
    stack = [root]
    while stack:
        for child in children_of(stack.pop()):
            if child not in result:
                result.add(child)
                stack.append(child)
    return result


RAY_SCRIPT = """
import os, sys, time
sys.path.insert(0, {src!r})
from prunebench.executors import make_executor

def double(x):
    return {{"value": 2 * x, "pid": os.getpid()}}

executor = make_executor("ray", workers=1)
out = {{}}
executor.run([21], double, lambda job: None, out.__setitem__)
print("READY", out[21].result["value"], flush=True)
time.sleep(float(sys.argv[1]))
executor.close()
print("CLOSED", flush=True)
"""


@pytest.fixture
def ray_script(tmp_path: Path) -> Path:
    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(RAY_SCRIPT.format(src=str(SRC.parent)))
    return script


def wait_ready(driver: subprocess.Popen[str]) -> None:
    assert driver.stdout is not None
    line = driver.stdout.readline()
    assert line.split() == ["READY", "42"], line


@pytest.mark.slow  # starts a private Ray (its servers and a worker): tens of seconds on 2 cores
def test_private_ray_listens_on_loopback_only_and_dies_with_a_killed_driver(ray_script: Path) -> None:
    driver = subprocess.Popen([sys.executable, str(ray_script), "60"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        wait_ready(driver)
        processes = descendants(driver.pid) | {driver.pid}
        ray_processes = {p for p in processes if b"ray" in command_line(p)}
        assert len(ray_processes) >= 4  # gcs_server, raylet, agents, a worker
        listening = listening_inodes()
        addresses = {listening[i] for p in processes for i in socket_inodes(p) if i in listening}
        assert addresses, "Ray's servers must be found listening"
        assert [a for a in addresses if not is_loopback(a)] == []
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 10
        while [p for p in ray_processes if alive(p)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in ray_processes if alive(p)] == []
    finally:
        if driver.poll() is None:
            driver.kill()


@pytest.mark.slow  # starts a private Ray
def test_closing_the_executor_ends_the_ray_it_started(ray_script: Path) -> None:
    # the driver waits 5 s before closing, so that Ray's processes are listed while they all live
    driver = subprocess.Popen([sys.executable, str(ray_script), "5"], stdout=subprocess.PIPE, text=True)
    wait_ready(driver)
    processes = {p for p in descendants(driver.pid) if b"ray" in command_line(p)}
    assert len(processes) >= 2, "Ray's servers must be found before the executor closes"
    assert driver.stdout is not None and driver.stdout.readline().strip() == "CLOSED"
    deadline = time.monotonic() + 10
    while [p for p in processes if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in processes if alive(p)] == []
    driver.wait(timeout=30)


INIT_SCRIPT = """
import sys, time
sys.path.insert(0, {src!r})
from prunebench.executors import make_executor

executor = make_executor("ray", workers=1)
print("CONNECTING", flush=True)
executor.connect()
print("CONNECTED", flush=True)
time.sleep(60)
"""


def processes_naming(directory: Path) -> set[int]:
    """Live processes whose command line or open files name ``directory``."""
    found = set()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            named = str(directory).encode() in Path(f"/proc/{pid}/cmdline").read_bytes() or any(
                os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/") for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        if named and alive(pid):
            found.add(pid)
    return found


def started(directory: Path, name: bytes) -> bool:
    """Whether a process of the Ray under ``directory`` with ``name`` in its command line is running."""
    for pid in processes_naming(directory):
        try:
            if name in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


@pytest.mark.slow  # starts a private Ray eight times: about 90 s on 2 cores
@pytest.mark.parametrize("kill_at", [0.5, 2.0, 4.0, "raylet", "raylet", "Agent", "Agent", "Agent"])
def test_a_driver_killed_inside_ray_init_leaves_no_ray_process(tmp_path: Path, kill_at: float | str) -> None:
    """Killed at a fixed time into ``ray.init``, the moment its raylet starts (about to fork the
    agents), or the moment its first agent starts (reparented to init at once), the driver leaves
    no process of its Ray and no Ray directory.

    The driver's ``TMPDIR`` is a directory of this test's own, under which Ray writes its logs:
    every process of that Ray holds files there or names it."""
    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(INIT_SCRIPT.format(src=str(SRC.parent)))
    # short: Ray's unix socket paths live under it and must stay under 108 bytes
    temp = Path(tempfile.mkdtemp(prefix="pbt-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "CONNECTING"
        begun = time.monotonic()
        if isinstance(kill_at, str):
            name = kill_at.encode()
            while not started(temp, name) and time.monotonic() - begun < 60:
                time.sleep(0.02)
            assert started(temp, name), f"no {kill_at} started within 60 s"
        else:
            assert isinstance(kill_at, float)
            time.sleep(kill_at)
        assert driver.poll() is None
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 15
        while (processes_naming(temp) or list(temp.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_naming(temp) == set()
        assert list(temp.iterdir()) == []  # the reaper removed the Ray directory
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in processes_naming(temp):  # never leave a failed try's processes behind
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("address", ["127.0.0.1:9", "ray://127.0.0.1:9"])
def test_a_ray_address_nobody_answers_fails_within_30_seconds(tmp_path: Path, address: str) -> None:
    """Ray retries such an address for about 14 minutes; prunebench refuses it in one line."""
    pytest.importorskip("ray")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "sweep": {"seed": [0, 1]}}))
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "prunebench.cli", "-q", "run", str(config), "--results",
                           str(tmp_path / "r"), "--executor", "ray", "--ray-address", address],
                          capture_output=True, text=True, env=env, timeout=120)
    assert time.monotonic() - started < 30, done.stderr
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"prunebench: error: --ray-address {address}: cannot join a Ray cluster: nothing accepts")
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "r").exists()


def test_an_unreachable_ray_address_is_one_line_exit_2(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "sweep": {"seed": [0, 1]}}))
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-m", "prunebench.cli", "-q", "run", str(config), "--results",
                           str(tmp_path / "r"), "--executor", "ray", "--ray-address", "auto"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("prunebench: error: --ray-address auto: cannot join a Ray cluster")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
