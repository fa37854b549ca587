"""Plugins: the README's own strategy, saved as a module, runs through the CLI on every executor.

The example and its config are read from README.md here, so the docs and this test cannot drift.
Runs that register strategies happen in subprocesses: the registries of this test process stay
as the other tests expect them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prunebench import plugins
from prunebench.cli import main
from prunebench.spec import build_specs
from prunebench.errors import ConfigError
from prunebench.plugins import load_plugins, loaded_plugins, plugins_in_config
from prunebench.store import ResultsDB

README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parents[1] / "src"
STRATEGY = "magnitude_squared"  # the name the README's example registers


def readme_blocks() -> tuple[str, str]:
    """The Python example and the YAML config of the README's "Adding a strategy" section."""
    text = README.read_text()
    section = text[text.index("## Adding a strategy") :]
    section = section[: section.index("\n## ", 1)]
    python = re.search(r"```python\n(.*?)```", section, re.S)
    config = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert python and config, "README's 'Adding a strategy' lost its python or yaml example"
    return python.group(1), config.group(1)


def prunebench(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = [str(SRC), *([str(pythonpath)] if pythonpath else []), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    return subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "-q", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )


def completed_runs(results: Path) -> dict[str, dict]:
    return {row["run_id"]: row for row in ResultsDB(results).rows() if row["status"] == "completed"}


def readme_files(tmp_path: Path) -> dict:
    """my_methods.py and compare.yaml as the README writes them, and the config as a mapping."""
    example, config_text = readme_blocks()
    (tmp_path / "my_methods.py").write_text(example)
    (tmp_path / "compare.yaml").write_text(config_text)
    config = yaml.safe_load(config_text)
    assert config["plugins"] == ["my_methods.py"] and STRATEGY in config["sweep"]["prune.strategy"]
    return config


def plugin_runs(results: Path, expected_plugins: list[str]) -> list[dict]:
    """The completed runs of a README sweep; checks their count and each provenance's plugins."""
    runs = completed_runs(results)
    assert len(runs) == 7  # 1 dense + 2 strategies x 2 levels + the random control at 2 levels
    ours = [r for r in runs.values() if r["spec"].get("prune", {}).get("strategy") == STRATEGY]
    assert len(ours) == 2
    for row in ours:
        result = json.loads((results / row["run_id"] / "result.json").read_text())
        assert result["provenance"]["plugins"] == expected_plugins
    return ours


@pytest.mark.slow  # three CLI subprocesses (a refusal, a sweep, a report), each importing torch
def test_readme_strategy_runs_with_the_plugin_flag_on_serial_and_reaches_the_report(tmp_path: Path) -> None:
    config = readme_files(tmp_path)
    (tmp_path / "flag.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "plugins"}))

    # Without the plugin the strategy is unknown: refused before anything is written.
    refused = prunebench(tmp_path, "run", "flag.yaml", "--results", "none", "--executor", "serial")
    assert refused.returncode == 2 and f"unknown strategy '{STRATEGY}'" in refused.stderr
    assert not (tmp_path / "none").exists()

    run = prunebench(
        tmp_path, "run", "flag.yaml", "train.epochs=1", "--plugin", "my_methods.py",
        "--results", "serial", "--executor", "serial",
    )
    assert run.returncode == 0, run.stderr
    plugin_runs(tmp_path / "serial", [str((tmp_path / "my_methods.py").resolve())])

    report = prunebench(tmp_path, "report", "--results", "serial", "--out", "report")
    assert report.returncode == 0, report.stderr
    summary = (tmp_path / "report" / "digits-mlp-summary.md").read_text()
    assert re.search(rf"^\| {STRATEGY} \| [^|]+ \| 4x-16x \|", summary, re.M), summary
    assert STRATEGY in (tmp_path / "report" / "report.html").read_text()


@pytest.mark.slow  # a CLI sweep in a subprocess with two spawned workers, each importing torch
def test_readme_config_runs_on_local_workers_with_its_plugin_named_twice(tmp_path: Path) -> None:
    """The config's key names the file and --plugin names it as a module: spawned workers import
    it once, and the strategy runs there."""
    readme_files(tmp_path)
    run = prunebench(
        tmp_path, "run", "compare.yaml", "train.epochs=1", "--plugin", "my_methods",
        "--results", "local", "--executor", "local", "--workers", "2", pythonpath=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    plugin_runs(tmp_path / "local", ["my_methods", str((tmp_path / "my_methods.py").resolve())])


def test_plugins_are_run_settings_outside_the_run_id() -> None:
    base = {"dataset": "synthetic", "model": "mlp"}
    spec, settings = build_specs(base)
    with_plugins, plugin_settings = build_specs({**base, "plugins": ["my_methods", "/x/other.py"]})
    assert with_plugins.run_id == spec.run_id
    assert plugin_settings.plugins == ("my_methods", "/x/other.py") and settings.plugins == ()


@pytest.mark.slow  # pip-installs a package into a fresh environment
def test_installed_package_registers_through_the_entry_point_group(tmp_path: Path) -> None:
    """A distribution on the path with a ``prunebench.plugins`` entry point needs no flag."""
    package = tmp_path / "site"
    (package / "cube_methods").mkdir(parents=True)
    (package / "cube_methods" / "__init__.py").write_text(
        "import torch\nfrom prunebench import register_scorer, NoOptions\n\n"
        "def register():\n"
        "    register_scorer('magnitude_cubed')(lambda inputs, options: "
        "{n: p.detach().abs() ** 3 for n, p in inputs.params.items()})\n"
    )
    info = package / "cube_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cube-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[prunebench.plugins]\ncubed = cube_methods:register\n")

    listed = prunebench(tmp_path, "list", "strategies", pythonpath=package)
    assert listed.returncode == 0, listed.stderr
    assert "magnitude_cubed" in listed.stdout
    plain = prunebench(tmp_path, "list", "strategies")
    assert "magnitude_cubed" not in plain.stdout


@pytest.fixture
def counting_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A plugin file that appends a line to a log each time its body runs; importable by name."""
    log = tmp_path / "executions.log"
    name = f"counting_plugin_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(f"with open({str(log)!r}, 'a') as f:\n    f.write('ran\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded", {})  # later runs in this process record no test plugin
    yield plugin, log
    sys.modules.pop(name, None)


def test_a_file_and_its_module_name_import_once(counting_plugin: tuple[Path, Path]) -> None:
    plugin, log = counting_plugin
    names = load_plugins([str(plugin), plugin.stem, str(plugin)])
    assert names == [str(plugin.resolve()), plugin.stem]
    load_plugins([plugin.stem])
    assert log.read_text() == "ran\n"
    assert set(names) <= set(loaded_plugins())


def test_a_module_name_then_its_file_import_once(counting_plugin: tuple[Path, Path]) -> None:
    plugin, log = counting_plugin
    load_plugins([plugin.stem])
    load_plugins([str(plugin)])
    assert log.read_text() == "ran\n"


def test_unknown_and_broken_plugins_are_one_line_errors_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dataset": "synthetic", "model": "mlp", "train": {"epochs": 1}}))
    broken = tmp_path / "broken_plugin_module.py"
    broken.write_text("import math\n\nraise RuntimeError('cannot register')\n")
    cases = [
        (["--plugin", "no_such_package.methods"], "--plugin: cannot import plugin 'no_such_package.methods': ModuleNotFoundError"),
        (["--plugin", str(tmp_path / "missing.py")], "missing.py': FileNotFoundError: no such file"),
        (["--plugin", str(broken)], "RuntimeError: cannot register (broken_plugin_module.py:3)"),
    ]
    for flags, message in cases:
        results = tmp_path / "results"
        assert main(["run", str(config), "--results", str(results), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not results.exists()
    assert "broken_plugin_module" not in sys.modules

    config.write_text(yaml.safe_dump({"dataset": "synthetic", "model": "mlp", "plugins": ["no_such_mod_xyz"]}))
    assert main(["run", str(config), "--results", str(tmp_path / "results")]) == 2
    assert "plugins: cannot import plugin 'no_such_mod_xyz'" in capsys.readouterr().err


def test_the_config_key_must_be_a_list_of_names() -> None:
    assert plugins_in_config({"plugins": ["a.b", "c.py"]}) == ["a.b", "c.py"]
    assert plugins_in_config({}) == []
    for bad in ("my_methods", [1], [""], {"a": 1}):
        with pytest.raises(ConfigError, match=r"^plugins: must be a list of module names or \.py files"):
            plugins_in_config({"plugins": bad})
