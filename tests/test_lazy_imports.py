"""The packages' public names load on first use, so reading results does not load the rest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import prunebench
import prunebench.metrics
import prunebench.pruning
import prunebench.report


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_reading_results_loads_neither_the_plots_nor_the_experiments() -> None:
    loaded = modules_after("import prunebench.report.results")
    assert "matplotlib" not in loaded and "scipy" not in loaded
    assert "prunebench.api" not in loaded and "prunebench.experiment" not in loaded
    assert "prunebench.report.write" not in loaded


def test_the_results_command_on_a_database_never_imports_torch(tmp_path: Path) -> None:
    # torch alone took most of `prunebench results`' 1,000-run time (docs/sweeps.md)
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "legacy-v0.db", results / "prunebench.db")
    code = ("import sys\nfrom prunebench.cli import main\n"
            f"codes = [main(['results', '--results', {str(results)!r}, '--format', f]) for f in ('table', 'csv', 'json')]\n"
            "print(codes, 'torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stderr.splitlines()[-1] == "[0, 0, 0] False", done.stderr
    assert done.stdout.count("magnitude") >= 3  # the runs were read and printed in every format


def test_the_spec_and_the_prunable_policy_load_without_torch() -> None:
    loaded = modules_after("import prunebench.spec\nfrom prunebench.pruning import PrunablePolicy\nPrunablePolicy()")
    assert "torch" not in loaded and "prunebench.pruning.mask" not in loaded


@pytest.mark.parametrize("package", [prunebench, prunebench.metrics, prunebench.pruning, prunebench.report])
def test_every_public_name_resolves_and_an_unknown_one_is_an_attribute_error(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = package.no_such_name  # type: ignore[attr-defined]


def test_from_import_of_a_public_name_gives_the_defining_modules_object() -> None:
    from prunebench import Mask, register_scorer
    from prunebench.pruning.mask import Mask as DefinedMask
    from prunebench.pruning.scores import register_scorer as defined_register
    from prunebench.report import write_report
    from prunebench.report.write import write_report as defined_write

    assert Mask is DefinedMask and register_scorer is defined_register and write_report is defined_write
