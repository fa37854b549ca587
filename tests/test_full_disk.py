"""A full disk is one line naming the path (exit 2), or a run stored failed with that line, and no
temp file outlives an error, an interrupt or a kill of its writer.

The disk is filled by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored): every write past it
fails with EFBIG, as writes to a full disk fail with ENOSPC, in SQLite, torch.save and the lock file alike.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.store import files
from prunebench.store.files import remove_leftovers, write_atomic

CONFIG = "dataset: synthetic\nmodel: mlp\ntrain: {epochs: 1}\nfinetune: {epochs: 1}\nprune: {strategy: magnitude, compression: 2}\n"
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from prunebench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_limited(tmp_path: Path, limit: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), "-q", "run", str(config), "--results", str(results),
                           "--executor", "serial"], capture_output=True, text=True, timeout=300)
    return done, results


def hidden_files(results: Path) -> list[str]:
    """Files whose name starts with a dot, the lock files aside."""
    return sorted(str(p) for p in results.rglob(".*") if p.name != ".prunebench.lock")


def test_no_room_for_the_database_is_one_line_naming_it(tmp_path: Path) -> None:
    done, results = run_limited(tmp_path, 30_000)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"prunebench: error: {results / 'prunebench.db'}: ") and done.stderr.count("\n") == 1, done.stderr
    assert hidden_files(results) == []


def test_no_room_for_a_checkpoint_stores_the_run_failed_naming_the_file(tmp_path: Path) -> None:
    done, results = run_limited(tmp_path, 100_000)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    from prunebench.store import ResultsDB

    rows = ResultsDB(results).rows()
    dense = next(r for r in rows if r["kind"] == "dense")
    assert dense["status"] == "failed" and "File too large" in dense["error"]
    assert str(results / "dense" / dense["dense_id"] / "model.pt") in dense["error"]
    assert hidden_files(results) == []  # the partial temp file was removed


def test_a_failed_or_interrupted_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "run" / "model.pt"

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError) as error:
        write_atomic(target, b"x" * 1000)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(target)

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"x" * 1000)
    assert list(target.parent.iterdir()) == []


def test_the_next_run_removes_temp_files_of_killed_writers_only(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    run = tmp_path / "0123456789abcdef"
    rounds = run / "rounds"
    rounds.mkdir(parents=True)
    killed = [run / f".model.pt.{gone.pid}.k2j4_x9.tmp", rounds / f".mask_01.pt.{gone.pid}.abc.tmp"]
    kept = [run / f".mask.pt.{os.getppid()}.abc.tmp",  # a live writer's
            run / ".model.pt.abc123",  # not this pattern: not provably prunebench's
            run / "notes.tmp"]
    for path in (*killed, *kept):
        path.write_bytes(b"partial")
    assert sorted(remove_leftovers([run, rounds])) == sorted(killed)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in killed)


def test_a_sigkill_mid_write_leaves_a_temp_file_the_next_run_removes(tmp_path: Path) -> None:
    """A writer SIGKILLed inside write_atomic; then `prunebench run` on that results directory."""
    results = tmp_path / "results"
    folder = results / "0123456789abcdef"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys\nfrom pathlib import Path\nfrom prunebench.store import files\n"
        "files.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"files.write_atomic(Path({str(folder / 'model.pt')!r}), b'x' * 100_000)\n"
    )])
    assert writer.wait(timeout=60) == -9
    left = list(folder.glob(".model.pt.*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size == 100_000 and not (folder / "model.pt").exists()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    from prunebench.cli import main

    assert main(["-q", "run", str(config), "--results", str(results), "--executor", "serial"]) == 0
    assert not left[0].exists()
