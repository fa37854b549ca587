"""Reproductions: listed, their configs valid, their reports honest about failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.config import RunSettings, build_specs
from prunebench.errors import ConfigError
from prunebench.models import create_model
from prunebench.pruning import prunable_parameters
from prunebench.pruning.schedules import layer_ladder
from prunebench.reproduce import REPRODUCTIONS, list_reproductions, run_reproduction, run_settings
from prunebench.reproduce.common import Check, Report, load_reproduction_config, mean_spread


def test_both_reproductions_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(list_reproductions()) == {"lth-lenet-mnist", "han-lenet-mnist"}
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "lth-lenet-mnist" in out and "han-lenet-mnist" in out


def test_unknown_reproductions_and_seed_counts_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown reproduction"):
        run_reproduction("lth-lenet-cifar", 3, run_settings(), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--seeds"):
        run_reproduction("lth-lenet-mnist", 0, run_settings(), None)  # type: ignore[arg-type]


def experiments() -> list[dict]:  # type: ignore[type-arg]
    lth = load_reproduction_config("lth-lenet-mnist")
    han = load_reproduction_config("han-lenet-mnist")
    return [lth["experiment"], *(entry["experiment"] for entry in han["models"].values())]


@pytest.mark.parametrize("experiment", experiments())
def test_reproduction_configs_are_valid_specs(experiment: dict) -> None:  # type: ignore[type-arg]
    spec, _ = build_specs({**experiment, "seed": 1})
    assert spec.prune.schedule == "iterative"
    assert not spec.prune.prunable.exclude_classifier  # the output layer is pruned too


def test_lth_config_yields_the_published_ladder() -> None:
    config = load_reproduction_config("lth-lenet-mnist")
    spec, _ = build_specs(config["experiment"])
    model = create_model(spec.model, (1, 28, 28), 10)
    sizes = {n: p.numel() for n, p in prunable_parameters(model, spec.prune.prunable).items()}
    it = spec.prune.iterative
    ladder = layer_ladder(sizes, it.rate, it.layer_rates, it.rounds or 0)
    for rounds, percent in config["published"]["ladder"].items():
        assert round(100 * sum(ladder[rounds - 1].values()) / sum(sizes.values()), 1) == percent


def test_report_fails_when_any_check_fails_and_says_so() -> None:
    checks = [Check("a", "1", "1", "=", True), Check("b", "2", "3", "=", False), Check("c", "3", "3", "—", None)]
    report = Report("x", "paper", [0, 1, 2], checks, 60.0, [])
    assert not report.passed
    assert "**FAIL**" in report.markdown() and "| pass |" in report.markdown() and "| reference |" in report.markdown()
    assert Report("y", "paper", [0], checks[::2], 1.0, []).passed  # a reference row is not a check
    assert mean_spread([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert set(REPRODUCTIONS) == set(list_reproductions())


def test_threads_travel_in_the_settings_and_the_callers_count_is_restored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[int] = []

    def probe(seeds: list[int], settings: RunSettings, results_dir: Path) -> Report:
        seen.append(torch.get_num_threads())
        return Report(name="probe", paper="-", seeds=seeds, checks=[], wall_time_s=0.0, differences=[])

    monkeypatch.setitem(REPRODUCTIONS, "probe", probe)
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    settings = run_settings(threads=wanted)
    assert settings.threads == wanted and torch.get_num_threads() == before
    run_reproduction("probe", 1, settings, tmp_path)
    assert seen == [wanted] and torch.get_num_threads() == before
    assert (tmp_path / "reproduce" / "probe").is_dir()
