"""Selection: scores + target -> Mask, pruning exact counts.

``keep`` is the number of prunable entries left after selection. Ties are broken by position
(parameter order, then flat index), so selection is deterministic. Entries pruned by a previous
mask stay pruned: masks only shrink.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask

Scope = Literal["global", "layer"]

# Below this many entries a plain sort is cheapest; above it, a histogram pass narrows the
# search so no full copy of the scores is ever made.
SORT_LIMIT = 1 << 20
HISTOGRAM_BINS = 1 << 14
# Comparisons over large scores run block by block: their boolean temporaries stay small, so
# the allocator can reuse them instead of growing the process by a fraction of the scores.
BLOCK = 1 << 20


def keep_count_for_compression(
    params_total: int, unprunable_nonzero: int, prunable_total: int, compression: float
) -> int:
    """Prunable entries to keep so that total / nonzero == ``compression`` (up to rounding).

    Every parameter counts in the ratio; unprunable ones are assumed to stay nonzero.
    """
    if compression < 1:
        raise ConfigError(f"prune.compression must be >= 1, got {compression}")
    keep = round(params_total / compression) - unprunable_nonzero
    if keep < 0:
        limit = params_total / max(unprunable_nonzero, 1)
        raise ConfigError(
            f"prune.compression {compression:g} cannot be reached: the {unprunable_nonzero} "
            f"parameters that are not prunable allow at most {limit:.2f}x "
            f"(make more parameters prunable via prune.prunable)"
        )
    return min(keep, prunable_total)


def count_true(flags: torch.Tensor) -> int:
    """Number of True entries. ``count_nonzero`` is several times faster than ``sum()`` on
    bools, which first widens every entry to int64."""
    return int(torch.count_nonzero(flags))


def value_range(chunks: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Smallest and largest value over all chunks, one pass each (infinities included)."""
    bounds = [torch.aminmax(c) for c in chunks if c.numel()]
    lo, hi = min(float(b.min) for b in bounds), max(float(b.max) for b in bounds)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError("scores contain NaN; a score must be a number to be ranked")
    return lo, hi


def finite_range(chunks: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Smallest and largest finite value over all chunks (at least one must exist)."""
    lo = min(float(c.masked_fill(~torch.isfinite(c), math.inf).min()) for c in chunks if c.numel())
    hi = max(float(c.masked_fill(~torch.isfinite(c), -math.inf).max()) for c in chunks if c.numel())
    return lo, hi


def blocks(chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Flat views of at most ``BLOCK`` entries covering every chunk, in order."""
    for chunk in chunks:
        flat = chunk.reshape(-1)
        for start in range(0, flat.numel(), BLOCK):
            yield flat[start : start + BLOCK]


def count_and_gather(chunks: Sequence[torch.Tensor], low: float, high: float) -> tuple[int, torch.Tensor]:
    """How many values lie below ``low``, and the values in ``[low, high]``, one pass."""
    below = 0
    inside = []
    for block in blocks(chunks):
        below += count_true(block < low)
        keep = block >= low
        keep &= block <= high
        inside.append(block[keep])
    return below, torch.cat(inside)


def kth_smallest(chunks: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th smallest value (1-based) over all chunks, without concatenating them."""
    n = sum(c.numel() for c in chunks)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} out of range for {n} values")
    if n <= SORT_LIMIT:
        return torch.cat([c.reshape(-1) for c in chunks]).kthvalue(k).values
    lo, hi = value_range(chunks)
    # Infinities are counted only when the range shows there are any: usually two passes saved.
    neg_inf = sum(count_true(torch.isneginf(c)) for c in chunks) if lo == -math.inf else 0
    pos_inf = sum(count_true(torch.isposinf(c)) for c in chunks) if hi == math.inf else 0
    if k <= neg_inf:
        return chunks[0].new_tensor(-math.inf)
    if k > n - pos_inf:
        return chunks[0].new_tensor(math.inf)
    if neg_inf or pos_inf:
        lo, hi = finite_range(chunks)
    if lo == hi:
        return chunks[0].new_tensor(lo)
    # histc leaves out values outside [lo, hi], so infinities need no special case here.
    counts = sum(torch.histc(c, bins=HISTOGRAM_BINS, min=lo, max=hi) for c in chunks)
    cumulative = torch.cumsum(counts, 0) + neg_inf
    bin_index = int(torch.searchsorted(cumulative, torch.tensor(float(k))))
    width = (hi - lo) / HISTOGRAM_BINS
    # One bin of margin on each side absorbs rounding at the histogram's bin edges.
    low_edge, high_edge = lo + (bin_index - 1) * width, lo + (bin_index + 2) * width
    below, candidates = count_and_gather(chunks, low_edge, high_edge)
    if below < k <= below + candidates.numel():
        return candidates.kthvalue(k - below).values
    return torch.cat([c.reshape(-1) for c in chunks]).kthvalue(k).values  # exact fallback


def prune_lowest(chunks: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Boolean 'pruned' tensors marking exactly the k lowest entries across ``chunks``."""
    if k <= 0:
        return [torch.zeros_like(c, dtype=torch.bool) for c in chunks]
    total = sum(c.numel() for c in chunks)
    if k >= total:
        return [torch.ones_like(c, dtype=torch.bool) for c in chunks]
    threshold = kth_smallest(chunks, k)
    pruned = [c < threshold for c in chunks]
    missing = k - sum(count_true(p) for p in pruned)
    for chunk, mark in zip(chunks, pruned):  # ties at the threshold: first positions first
        if missing == 0:
            break
        tied = torch.nonzero((chunk == threshold).reshape(-1)).squeeze(1)[:missing]
        mark.view(-1)[tied] = True
        missing -= tied.numel()
    return pruned


def proportional_split(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``sizes`` exactly (largest remainder method)."""
    whole = sum(sizes)
    raw = [total * s / whole for s in sizes]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(sizes)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def select(
    scores: Mapping[str, torch.Tensor],
    keep: int,
    scope: Scope = "global",
    previous: Mask | None = None,
) -> Mask:
    """Keep exactly ``keep`` entries (fewer only if a previous mask already pruned more).

    ``global`` ranks all scores together; ``layer`` keeps the same fraction of every tensor.
    """
    names = list(scores)
    if previous is not None and set(previous) != set(names):
        raise ValueError("previous mask and scores cover different parameters")
    chunks = []
    for name in names:
        score = scores[name].detach().float()
        if previous is not None:  # already-pruned entries rank first, so they stay pruned
            score = score.masked_fill(~previous[name].to(score.device), -math.inf)
        chunks.append(score)
    already = [count_true(torch.isneginf(c)) if previous is not None else 0 for c in chunks]
    if scope == "global":
        to_prune = max(sum(c.numel() for c in chunks) - keep, sum(already))
        pruned = prune_lowest(chunks, to_prune)
    elif scope == "layer":
        quotas = proportional_split(keep, [c.numel() for c in chunks])
        pruned = [
            prune_lowest([c], max(c.numel() - q, done))[0] for c, q, done in zip(chunks, quotas, already)
        ]
    else:
        raise ConfigError(f"prune.scope must be 'global' or 'layer', got {scope!r}")
    # Inverted in place: a second set of boolean tensors would add a quarter of the scores'
    # bytes to the peak memory of a large selection.
    return Mask({name: mark.logical_not_() for name, mark in zip(names, pruned)})
