"""What every reproduction shares: its config, checks with verdicts, and the report."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prunebench.spec import ExperimentSpec, build_specs
from prunebench.config_file import load_yaml
from prunebench.store.artifacts import write_json


def load_reproduction_config(name: str) -> dict[str, Any]:
    """The YAML shipped in ``prunebench/reproduce/configs/<name>.yaml``, read like any config file."""
    text = resources.files("prunebench.reproduce").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


def experiment_spec(data: dict[str, Any], seed: int) -> ExperimentSpec:
    """A config mapping plus a seed, validated the way ``prunebench run`` validates."""
    spec, _ = build_specs({**data, "seed": seed})
    return spec


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single seed)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def fmt(values: Sequence[float], unit: str = "%", digits: int = 2) -> str:
    mean, spread = mean_spread(values)
    return f"{mean:.{digits}f}{unit} ± {spread:.{digits}f}"


@dataclass
class Check:
    """One line of the report: the published figure, ours, the tolerance and the verdict."""

    name: str
    published: str
    reproduced: str
    tolerance: str
    passed: bool | None  # None: a reference figure shown for context, not a check
    per_seed: list[float] = field(default_factory=list)


@dataclass
class Report:
    name: str
    paper: str
    seeds: list[int]
    checks: list[Check]
    wall_time_s: float
    differences: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(check.passed is not False for check in self.checks)

    def table(self) -> Table:
        table = Table(title=f"{self.name}: {len(self.seeds)} seeds, {self.wall_time_s / 60:.1f} min")
        for column in ("check", "published", "reproduced (mean ± std)", "tolerance", "verdict"):
            table.add_column(column)
        for check in self.checks:
            verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "reference"}[check.passed]
            table.add_row(check.name, check.published, check.reproduced, check.tolerance, verdict)
        return table

    def markdown(self) -> str:
        lines = [
            f"| check | published | reproduced (mean ± std over {len(self.seeds)} seeds) | tolerance | verdict |",
            "|---|---|---|---|---|",
        ]
        for check in self.checks:
            verdict = {True: "pass", False: "**FAIL**", None: "reference"}[check.passed]
            lines.append(f"| {check.name} | {check.published} | {check.reproduced} | {check.tolerance} | {verdict} |")
        return "\n".join(lines)

    def save(self, folder: Path) -> None:
        write_json(folder / "report.json", {**asdict(self), "passed": self.passed})
        (folder / "report.md").write_text(self.markdown() + "\n")

    def print(self, console: Console) -> None:
        console.print(f"[bold]{self.name}[/]: {self.paper}")
        console.print(self.table())
        console.print(f"verdict: {'[green]all checks pass[/]' if self.passed else '[red]some checks fail[/]'}; "
                      f"wall time {self.wall_time_s / 60:.1f} min (runs already in the results folder are reused)")


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
