"""A new user's odd inputs to the CLI: each is one line on stderr and exit 2, nothing written.

Every case runs ``prunebench`` in-process from inside ``tmp_path`` and compares the folder's
files before and after.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main

TINY = {
    "dataset": "digits",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "prune": {"strategy": "magnitude", "compression": 4},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str, match: str) -> str:
    """``prunebench argv`` exits 2 with one ``prunebench: error:`` line holding ``match``."""
    before = files(tmp_path)
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("prunebench: error:") and "\n" not in err, err
    assert match in err, err
    assert files(tmp_path) == before
    return err


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


def test_a_named_pipe_without_a_writer_as_config_does_not_hang(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(here / "pipe")
    done = threading.Event()
    watchdog = threading.Timer(20, lambda: done.is_set() or os.open(here / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    watchdog.start()  # on a regression, open a writer so the test fails instead of hanging
    try:
        refused(here, capsys, "run", "pipe", "--results", "r", match="required key is missing")
    finally:
        done.set()
        watchdog.cancel()


def test_an_endless_device_as_config_is_refused_by_its_size(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(here, capsys, "run", "/dev/zero", "--results", "r", match="larger than")


def test_a_config_symlink_loop_is_one_line(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "a.yaml").symlink_to(here / "b.yaml")
    (here / "b.yaml").symlink_to(here / "a.yaml")
    refused(here, capsys, "run", "a.yaml", "--results", "r", match="cannot be read")


def test_a_plugin_that_calls_sys_exit_is_a_config_error(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "quits.py").write_text("import sys\nsys.exit(3)\n")
    refused(here, capsys, "run", "tiny.yaml", "--results", "r", "--plugin", "./quits.py", match="SystemExit: 3")


def test_a_folder_as_plugin_says_it_is_a_folder(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (here / "mine").mkdir()
    refused(here, capsys, "run", "tiny.yaml", "--results", "r", "--plugin", "./mine", match="a directory")


def test_overrides_may_follow_the_options(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run c.yaml --results r seed=-1` reads seed=-1 as an override, not an unknown argument."""
    refused(here, capsys, "run", "tiny.yaml", "--results", "r", "seed=-1", match="seed: Input should be greater")
    refused(here, capsys, "run", "tiny.yaml", "--executor", "serial", "train.lr=.inf", "--results", "r",
            match="train.lr")


def test_an_unknown_option_after_an_override_is_still_refused(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["run", "tiny.yaml", "--results", "r", "seed=1", "--bogus"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert not (here / "r").exists()


@pytest.mark.parametrize(("override", "match"), [
    ("sweep={seed: [0, 0]}", "sweep.seed: value 0 appears more than once"),
    ("sweep={prune.compression: [2, 2.0]}", "sweep.prune.compression: value 2.0 appears more than once"),
    ("prune.structure=bogus", "error: prune.structure: must be"),
])
def test_a_repeated_sweep_value_or_an_unknown_structure_is_one_line(
    here: Path, capsys: pytest.CaptureFixture[str], override: str, match: str
) -> None:
    err = refused(here, capsys, "run", "tiny.yaml", override, "--results", "r", match=match)
    assert "prune.structure: prune.structure" not in err  # the key once


def test_listing_with_an_unknown_reproduction_name_is_refused(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(here, capsys, "reproduce", "--list", "bogus", match="unknown reproduction 'bogus'")
