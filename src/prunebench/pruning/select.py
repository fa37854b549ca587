"""Selection: scores + target -> Mask, pruning exact counts.

``keep`` is the number of prunable entries left after selection. Ties are broken by position
(parameter order, then flat index), so selection is deterministic. Entries pruned by a previous
mask stay pruned: masks only shrink.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask

Scope = Literal["global", "layer"]

# Below this many entries a plain sort is cheapest; above it, a histogram pass narrows the
# search so no full copy of the scores is ever made.
SORT_LIMIT = 1 << 20
HISTOGRAM_BINS = 1 << 14


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


def kth_smallest(chunks: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """The k-th smallest value (1-based) over all chunks, without concatenating them."""
    n = sum(c.numel() for c in chunks)
    if not 1 <= k <= n:
        raise ValueError(f"k={k} out of range for {n} values")
    if n <= SORT_LIMIT:
        return torch.cat([c.reshape(-1) for c in chunks]).kthvalue(k).values
    neg_inf = sum(int(torch.isneginf(c).sum()) for c in chunks)
    pos_inf = sum(int(torch.isposinf(c).sum()) for c in chunks)
    if k <= neg_inf:
        return chunks[0].new_tensor(-math.inf)
    if k > n - pos_inf:
        return chunks[0].new_tensor(math.inf)
    finite = [torch.where(torch.isinf(c), torch.nan, c) if neg_inf or pos_inf else c for c in chunks]
    lo = min(float(c.nan_to_num(math.inf).min()) if neg_inf or pos_inf else float(c.min()) for c in finite)
    hi = max(float(c.nan_to_num(-math.inf).max()) if neg_inf or pos_inf else float(c.max()) for c in finite)
    if lo == hi:
        return chunks[0].new_tensor(lo)
    counts = sum(torch.histc(c, bins=HISTOGRAM_BINS, min=lo, max=hi) for c in finite)
    cumulative = torch.cumsum(counts, 0) + neg_inf
    bin_index = int(torch.searchsorted(cumulative, torch.tensor(float(k))))
    width = (hi - lo) / HISTOGRAM_BINS
    # One bin of margin on each side absorbs rounding at the histogram's bin edges.
    low_edge, high_edge = lo + (bin_index - 1) * width, lo + (bin_index + 2) * width
    below = sum(int((c < low_edge).sum()) for c in chunks)
    candidates = torch.cat([c[(c >= low_edge) & (c <= high_edge)] for c in chunks])
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
    missing = k - sum(int(p.sum()) for p in pruned)
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
    already = [int(torch.isneginf(c).sum()) if previous is not None else 0 for c in chunks]
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
    return Mask({name: ~mark for name, mark in zip(names, pruned)})
