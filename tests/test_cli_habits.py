"""The command line's habits: sweep lists from the command line, -q anywhere, --version, help
with defaults and examples, did-you-mean, refusals before any training."""

from __future__ import annotations

import builtins
import logging
from pathlib import Path
from typing import Any

import pytest

from prunebench.cli import build_parser, main
from prunebench.spec import build_specs, read_config
from prunebench.errors import ConfigError
from prunebench.executors.ray_executor import ray_log_level
from prunebench.plan.sweep import plan_from_mapping

BASE = "dataset: digits\nmodel: mlp\ntrain: {epochs: 1}\nfinetune: {epochs: 1}\n"


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + text)
    return path


def test_a_sweep_list_is_overridden_from_the_command_line(tmp_path: Path) -> None:
    path = config(tmp_path, "sweep: {prune.compression: [2, 4, 16], seed: [0]}\n")
    data = read_config(path, ["sweep.prune.compression=[2,8]", "sweep.seed=[0,1]"])
    assert data["sweep"] == {"prune.compression": [2, 8], "seed": [0, 1]}
    plan = plan_from_mapping(data)
    assert sorted({j.spec.prune.compression for j in plan.pruned_jobs}) == [2, 8]


def test_quiet_goes_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-q", "list"]).quiet and parser.parse_args(["list", "-q"]).quiet
    assert parser.parse_args(["report", "--out", "r", "--quiet"]).quiet and not parser.parse_args(["list"]).quiet


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("prunebench ")


@pytest.mark.parametrize("command", ["run", "list", "results", "report", "demo", "reproduce"])
def test_help_shows_defaults_and_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert f"example:\n  prunebench {command}" in text
    if command in ("run", "results", "demo", "reproduce"):
        assert "(default: prunebench-results" in text


def test_key_typos_get_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, "trian: {epochs: 1}\nprune: {compresion: 4}\n")
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "trian: unknown key; did you mean train?" in err
    assert "prune.compresion: unknown key; did you mean prune.compression?" in err
    assert not (tmp_path / "r").exists()


def test_a_reproduction_name_typo_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "lth-lenet"]) == 2
    assert "did you mean lth-lenet-mnist?" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_with_momentum_is_refused(tmp_path: Path, optimizer: str) -> None:
    data = read_config(config(tmp_path, ""), [f"train.optimizer={optimizer}", "train.momentum=0.5"])
    with pytest.raises(ConfigError, match=f"momentum 0.5 is an SGD setting that optimizer '{optimizer}' does not use"):
        build_specs(data)
    build_specs(read_config(config(tmp_path, ""), [f"train.optimizer={optimizer}"]))  # momentum left out: fine


def test_a_missing_torch_pruning_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    real_import = builtins.__import__

    def no_torch_pruning(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch_pruning":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch_pruning)
    path = config(tmp_path, "prune: {strategy: l1_filter, structure: channel, scope: layer, channel_fraction: 0.5}\n")
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("pip install 'prunebench[structured]'") and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "r").glob("dense*"))  # nothing trained


def test_quiet_silences_rays_own_logs() -> None:
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.WARNING)  # what -q sets
        assert ray_log_level() == logging.ERROR
        root.setLevel(logging.INFO)
        assert ray_log_level() == logging.INFO
    finally:
        root.setLevel(before)


def test_a_commands_failure_summary_lists_only_its_own_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from prunebench import store
    from prunebench.plan import runner

    path = config(tmp_path, "sweep: {prune.compression: [2, 4]}\n")
    plan = plan_from_mapping(read_config(path))
    mine = plan.pruned_jobs[0].run_id
    rows = [{"run_id": mine, "status": "failed", "error": "needs pip install 'prunebench[structured]'"},
            {"run_id": "0123456789abcdef", "status": "failed", "error": "an earlier command's failure"}]

    class Database:
        def __init__(self, path: Path) -> None:
            pass

        def rows(self) -> list[dict[str, Any]]:
            return rows

    monkeypatch.setattr(runner, "run_plan", lambda *args, **kwargs: {"completed": len(plan.jobs) - 1, "failed": 1})
    monkeypatch.setattr(store, "ResultsDB", Database)
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--executor", "serial"]) == 1
    out = capsys.readouterr().out
    assert f"failed {mine}: needs pip install 'prunebench[structured]'" in out  # brackets kept: no rich markup
    assert "0123456789abcdef" not in out and "earlier command" not in out
