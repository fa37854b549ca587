"""Build src/prunebench/report/literature.csv from ShrinkBench's meta-analysis table.

Source: Blalock, Gonzalez Ortiz, Frankle, Guttag, "What is the State of Neural Network
Pruning?" (MLSys 2020), repository JJGO/shrinkbench, analysis/assets/existing-results/
(MIT licence). Values there are strings as the papers' authors wrote them; this keeps the
rows that give a top-1 accuracy and a compression or speedup ratio, converted to numbers with
prunebench's definitions (ratio = original / remaining).

    python scripts/clean_literature.py ../shared/reference/shrinkbench-literature/results.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "prunebench" / "report" / "literature.csv"
FIELDS = ("paper", "dataset", "model", "method", "top1", "dense_top1", "compression", "speedup")


def number(text: str) -> float | None:
    """'93.5%' -> 93.5; '1.2e3' -> 1200.0; '' or junk -> None."""
    text = text.strip().replace(",", "").rstrip("x")
    try:
        return float(text.rstrip("%"))
    except ValueError:
        return None


def fraction(text: str) -> float | None:
    value = number(text)
    if value is None:
        return None
    return value / 100 if text.strip().endswith("%") else value


def ratio(direct: str, kept: str, saved: str, original: str, remaining: str) -> float | None:
    for value in (number(direct),):
        if value and value > 0:
            return value
    kept_share = fraction(kept)
    if kept_share and 0 < kept_share <= 1:
        return 1 / kept_share
    saved_share = fraction(saved)
    if saved_share is not None and 0 <= saved_share < 1:
        return 1 / (1 - saved_share)
    orig, rem = number(original), number(remaining)
    if orig and rem:
        return orig / rem
    return None


def top1(row: dict[str, str]) -> tuple[float | None, float | None]:
    dense = number(row["OrigTop1"]) or (100 - e if (e := number(row["OrigErr1"])) is not None else None)
    value = number(row["Top1"])
    if value is None and (err := number(row["Err1"])) is not None:
        value = 100 - err
    if value is None and dense is not None and (delta := number(row["dTop1"])) is not None:
        value = dense + delta
    return value, dense


def clean(source: Path) -> list[dict[str, object]]:
    rows = []
    with source.open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            accuracy, dense = top1(row)
            compression = ratio(row["old/new Nparam"], row["keptParams"], row["savedParams"], row["OrigMParams"], row["MParams"])
            speedup = ratio(row["old/new FLOPS"], row["keptFLOPS"], row["savedFLOPS"], row["OrigGFLOPS"], row["GFLOPS"])
            if accuracy is None or (compression is None and speedup is None):
                continue
            rows.append({
                "paper": row["Paper"], "dataset": row["Dataset"], "model": row["Model"], "method": row["Method"],
                "top1": round(accuracy / 100, 5), "dense_top1": round(dense / 100, 5) if dense else "",
                "compression": round(compression, 4) if compression else "", "speedup": round(speedup, 4) if speedup else "",
            })
    return rows


if __name__ == "__main__":
    cleaned = clean(Path(sys.argv[1]))
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(cleaned)
    print(f"{len(cleaned)} rows -> {OUT}")
