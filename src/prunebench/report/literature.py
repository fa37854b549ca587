"""Published results beside ours: ShrinkBench's meta-analysis table (MIT), cleaned.

Blalock, Gonzalez Ortiz, Frankle, Guttag, "What is the State of Neural Network Pruning?",
MLSys 2020. `literature.csv` is built by `scripts/clean_literature.py`; it keeps rows that
report a top-1 accuracy and a compression or speedup ratio. Licence: LITERATURE-LICENSE.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources

CREDIT = (
    "Published results: ShrinkBench meta-analysis tables (Blalock et al., 'What is the State of "
    "Neural Network Pruning?', MLSys 2020; MIT licence)."
)
# prunebench name -> names the literature table uses, where normalizing is not enough
ALIASES = {"lenet-5": ("lenet5caffe", "lenet5"), "fashion-mnist": ("fashionmnist",)}


@dataclass(frozen=True)
class PublishedPoint:
    paper: str
    method: str
    top1: float
    compression: float | None
    speedup: float | None


def normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def published(dataset: str, model: str) -> list[PublishedPoint]:
    """Published points for a (dataset, model) given in prunebench's names."""
    datasets = {normalize(dataset), *ALIASES.get(dataset, ())}
    models = {normalize(model), *ALIASES.get(model, ())}
    text = resources.files("prunebench.report").joinpath("literature.csv").read_text()
    points = []
    for row in csv.DictReader(text.splitlines()):
        if normalize(row["dataset"]) in datasets and normalize(row["model"]) in models:
            points.append(PublishedPoint(
                paper=row["paper"], method=row["method"], top1=float(row["top1"]),
                compression=float(row["compression"]) if row["compression"] else None,
                speedup=float(row["speedup"]) if row["speedup"] else None,
            ))
    return points
