"""How often magnitude's keep boundary falls on a tie in a language model's decoder Linears.

    python benchmarks/lm_ties.py                      # the default model, smollm2-135m
    python benchmarks/lm_ties.py --model hf:DIR --block 0

The default model is a dequantized Q4_1 checkpoint: every block of 32 weights takes one of 16
levels, so equal |w| are common, and where two equal ones sit at the keep boundary the selection's
tie rule, not the method, decides which of them is pruned (docs/methods.md, "Ties at the keep
boundary"). For each selection that halves a layer, this prints the fraction of its units with a
tie exactly at the boundary, that is whose N-th and (N+1)-th largest |w| are equal (N the number
kept):

- ``2:4`` and ``4:8``: groups of M consecutive weights along the input dimension, N = 2 and 4;
- ``row 50%``: whole output rows, N = in - round(0.5 * in), the count ``select_rows`` keeps
  (``prune.scope: row``, which configs/llm-comparison.yaml pins for magnitude).

Rows: each prunable projection of one block (``--block``, default 3), the three projections the
issue measured (q, up, down) pooled in that block, the same three pooled over all blocks, and
every prunable Linear of every block. The model is loaded by prunebench's own loader, exactly as
a run loads it. Counting only: nothing is pruned, no RNG is drawn.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402

SELECTIONS = ("2:4", "4:8", "row 50%")
POOLED = ("q_proj", "up_proj", "down_proj")  # the projections issue #21 measured in block 3
NAME = re.compile(r"\.(\d+)\.(?:[A-Za-z_]+\.)?([A-Za-z_0-9]+)\.weight$")  # "...layers.3.mlp.up_proj.weight"


@dataclass(frozen=True)
class Count:
    """Units (groups or rows) with a tie at the keep boundary, out of all units."""

    tied: int
    total: int

    def __add__(self, other: Count) -> Count:
        return Count(self.tied + other.tied, self.total + other.total)

    @property
    def fraction(self) -> float:
        return self.tied / self.total if self.total else float("nan")


def boundary_ties(magnitudes: torch.Tensor, keep: int) -> Count:
    """Rows of a 2-D tensor whose ``keep``-th and ``keep + 1``-th largest entries are equal."""
    if not 0 < keep < magnitudes.shape[1]:
        return Count(0, magnitudes.shape[0])  # all kept or all pruned: no boundary to tie at
    top = magnitudes.topk(keep + 1, dim=1).values  # sorted, largest first
    return Count(int((top[:, keep - 1] == top[:, keep]).sum()), magnitudes.shape[0])


def tie_counts(weight: torch.Tensor) -> dict[str, Count]:
    """The tie counts of one (out, in) weight for each selection in SELECTIONS."""
    magnitudes = weight.detach().abs().float()
    columns = magnitudes.shape[1]
    counts = {}
    for n, m in ((2, 4), (4, 8)):
        if columns % m == 0:
            counts[f"{n}:{m}"] = boundary_ties(magnitudes.reshape(-1, m), n)
    counts["row 50%"] = boundary_ties(magnitudes, columns - round(0.5 * columns))
    return counts


def pooled(per_layer: Iterable[Mapping[str, Count]]) -> dict[str, Count]:
    total: dict[str, Count] = {}
    for counts in per_layer:
        for selection, count in counts.items():
            total[selection] = total.get(selection, Count(0, 0)) + count
    return total


def split_name(name: str) -> tuple[int, str]:
    """(block index, projection) of a prunable weight's parameter name."""
    found = NAME.search(name)
    if found is None:
        raise ValueError(f"not a decoder-block Linear weight: {name}")
    return int(found.group(1)), found.group(2)


def table(rows: Sequence[tuple[str, Mapping[str, Count]]]) -> str:
    lines = ["| weights | " + " | ".join(f"{s} tied (groups or rows)" for s in SELECTIONS) + " |",
             "| --- |" + " --- |" * len(SELECTIONS)]
    for label, counts in rows:
        cells = [f"{100 * counts[s].fraction:.1f}% ({counts[s].tied:,} / {counts[s].total:,})" if s in counts else "-"
                 for s in SELECTIONS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="smollm2-135m", help="a built-in language model or hf:<path> (default smollm2-135m)")
    parser.add_argument("--block", type=int, default=3, help="the decoder block shown projection by projection (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; counting is cheap)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so that --help works without the language-model extra.
    from prunebench.errors import ConfigError
    from prunebench.models.lm import load_causal_lm
    from prunebench.pruning.layerwise import lm_prunable

    torch.set_num_threads(args.threads)
    try:
        loaded = load_causal_lm(args.model)
    except ConfigError as exc:  # a bad --model: one line, exit 2, as the CLI does
        print(f"lm_ties: error: {exc}", file=sys.stderr)
        return 2
    counts = {split_name(name): tie_counts(weight) for name, weight in lm_prunable(loaded.model).items()}
    blocks = sorted({block for block, _ in counts})
    if args.block not in blocks:
        print(f"lm_ties: error: --block {args.block}: the model has blocks {blocks[0]} to {blocks[-1]}", file=sys.stderr)
        return 2
    rows = [(f"block {args.block} {proj}", layer) for (block, proj), layer in counts.items() if block == args.block]
    rows.append((f"block {args.block} {', '.join(POOLED)}",
                 pooled(layer for (block, proj), layer in counts.items() if block == args.block and proj in POOLED)))
    rows.append((f"all {len(blocks)} blocks {', '.join(POOLED)}",
                 pooled(layer for (_, proj), layer in counts.items() if proj in POOLED)))
    rows.append((f"all {len(blocks)} blocks, every prunable Linear", pooled(counts.values())))
    print(f"model {args.model}: {loaded.description}")
    print(f"CPU {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {args.threads} thread(s), "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print("A tie: the N-th and (N+1)-th largest |w| of a group (N:M) or row (50% of a row) are equal.\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
