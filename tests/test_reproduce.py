"""Reproductions: listed, their configs valid, their reports honest about failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.spec import RunSettings, build_specs
from prunebench.errors import ConfigError
from prunebench.models import create_model
from prunebench.pruning import prunable_parameters
from prunebench.pruning.schedules import layer_ladder
from prunebench.reproduce import REPRODUCTIONS, list_reproductions, run_reproduction, run_settings
from prunebench.reproduce.common import Check, Report, load_reproduction_config, mean_spread


def test_every_reproduction_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    names = {"lth-lenet-mnist", "han-lenet-mnist", "deep-compression-lenet-mnist"}
    assert set(list_reproductions()) == names
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names)


def test_unknown_reproductions_and_seed_counts_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown reproduction"):
        run_reproduction("lth-lenet-cifar", 3, run_settings(), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--seeds"):
        run_reproduction("lth-lenet-mnist", 0, run_settings(), None)  # type: ignore[arg-type]


def experiments() -> list[dict]:  # type: ignore[type-arg]
    lth = load_reproduction_config("lth-lenet-mnist")
    han = load_reproduction_config("han-lenet-mnist")
    deep = load_reproduction_config("deep-compression-lenet-mnist")
    return [lth["experiment"], *(entry["experiment"] for c in (han, deep) for entry in c["models"].values())]


def test_deep_compression_prunes_as_han_and_quantizes_as_the_paper() -> None:
    han = load_reproduction_config("han-lenet-mnist")
    deep = load_reproduction_config("deep-compression-lenet-mnist")
    assert deep["prunable_compression"] == han["prunable_compression"]
    for name, entry in deep["models"].items():
        experiment = dict(entry["experiment"])
        compress = experiment.pop("compress")
        assert experiment == han["models"][name]["experiment"]  # the same pruned networks, then the stage
        spec, _ = build_specs(entry["experiment"])
        assert spec.compress is not None and spec.compress.huffman
        assert dict(spec.compress.bits) == {"lenet-300-100": {"linear": 6}, "lenet-5": {"conv": 8, "linear": 5}}[name]
        assert compress["index_bits"] == {k: {"conv": 8, "linear": 5}[k] for k in compress["bits"]}


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


def test_a_reproduction_holds_the_results_lock(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """While its runs write, a `prunebench run` on the same results directory would wait."""
    import fcntl
    import os

    from prunebench.store.lock import LOCK_FILE

    held: list[bool] = []

    def fake_run(seeds: list[int], settings: object, results_dir) -> Report:  # type: ignore[no-untyped-def]
        fd = os.open(results_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: conflicts even in-process
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)
        return Report("fake", "paper", seeds, [], 0.0, [])

    monkeypatch.setitem(REPRODUCTIONS, "fake", fake_run)
    report = run_reproduction("fake", 1, run_settings(), tmp_path / "results")
    assert held == [True] and report.passed
    assert (tmp_path / "results" / "reproduce" / "fake" / "report.json").is_file()


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_reproduction_configs_load_as_plain_yaml_would(name: str) -> None:
    from importlib import resources

    import yaml

    text = resources.files("prunebench.reproduce").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    assert load_reproduction_config(name) == yaml.safe_load(text)


def test_reproduction_configs_go_through_the_bounded_loader(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A duplicated key (which plain YAML keeps the last of) is refused, as in any config file."""
    from prunebench.reproduce import common

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "twice.yaml").write_text("summary: a\nsummary: b\n")
    monkeypatch.setattr(common.resources, "files", lambda package: tmp_path)
    with pytest.raises(ConfigError, match="key 'summary' appears twice"):
        load_reproduction_config("twice")
