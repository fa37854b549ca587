"""Selection: scores + target -> Mask, pruning exact counts.

``keep`` is the number of prunable entries left after selection. Entries pruned by a previous
mask stay pruned: masks only shrink.

The tie rule, the same for every structure, scope and model family (classifiers, N:M groups,
blocks, channels, a language model's rows, layers and global selection): when T entries tie at
the keep boundary and r of them must go, which r are pruned is a uniformly random choice drawn
from a local generator seeded by the run's seed (and the name of the tensor a layer-wise
selection covers, so a tensor's mask does not depend on the tensors selected beside it). Never
by position: a method's result must not depend on which of two equal weights comes first in
memory. The same seed gives the same mask on every path below; the global RNG is never touched.
Untied scores are ranked exactly as a sort ranks them.

Large selections first try a sampled band: a strided sample of the scores brackets the k-th
value, one blocked pass marks everything at or below the band's top (that marking becomes the
result) and lists the few entries inside the band, and an exact kthvalue over those settles
the threshold and which of its ties go. The counts of that pass prove the bracket held; when it
did not (an unlucky sample, a huge tie, NaN or +inf scores) the histogram search below answers
instead. Both give the same, exact result: the same mask for the same seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask

Scope = Literal["global", "layer"]

# Below this many entries a plain sort is cheapest; above it, histogram passes narrow the
# search so no full copy of the scores is ever made.
SORT_LIMIT = 1 << 20
HISTOGRAM_BINS = 1 << 14
# At most this many candidate values are gathered for the final exact kthvalue; a larger
# bracket (a big tie, e.g. the zeros of an already-pruned model) is narrowed again instead.
GATHER_LIMIT = 1 << 20
MAX_REFINEMENTS = 8
# Passes over large scores run block by block: their temporaries stay small, so the
# allocator can reuse them instead of growing the process by a fraction of the scores.
BLOCK = 1 << 20
# The sampled band: above this many entries; every SAMPLE_STRIDE-th score is sampled, the band
# spans BAND_SIGMAS standard deviations of the sample's rank either side of the k-th value,
# and a band of more than BAND_LIMIT entries hands over to the histogram search.
SAMPLED_MIN = 1 << 20
SAMPLE_STRIDE = 128
BAND_SIGMAS = 6.0
BAND_LIMIT = 1 << 22
# Blocks of the sampled pass fit in a core's L2 cache, so its second look at a block is cheap.
PASS_BLOCK = 1 << 16
LOWEST_ABOVE_NEG_INF = -torch.finfo(torch.float32).max


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
    lo, hi = math.inf, -math.inf
    for block in blocks(chunks):
        finite = block[torch.isfinite(block)]
        if finite.numel():
            bounds = torch.aminmax(finite)
            lo, hi = min(lo, float(bounds.min)), max(hi, float(bounds.max))
    return lo, hi


def blocks(chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Flat views of at most ``BLOCK`` entries covering every chunk, in order."""
    for chunk in chunks:
        flat = chunk.reshape(-1)
        for start in range(0, flat.numel(), BLOCK):
            yield flat[start : start + BLOCK]


def histogram(chunks: Sequence[torch.Tensor], lo: float, hi: float) -> torch.Tensor:
    """Counts of the values in ``[lo, hi]`` over ``HISTOGRAM_BINS`` equal bins, in float64.

    Per block, float32 counts are exact (a block has fewer than 2**24 entries); summing them
    in float64 keeps them exact for any model size.
    """
    return sum(torch.histc(b, bins=HISTOGRAM_BINS, min=lo, max=hi).double() for b in blocks(chunks))


def bracket(counts: torch.Tensor, below: int, k: int, lo: float, hi: float) -> tuple[float, float]:
    """Value bounds around the histogram bin that holds the k-th value (``below`` values
    lie under ``lo``), widened by one bin each side to absorb rounding at bin edges."""
    cumulative = torch.cumsum(counts, 0) + below
    bin_index = int(torch.searchsorted(cumulative, cumulative.new_tensor(float(k))))  # same device as the scores
    width = (hi - lo) / HISTOGRAM_BINS
    return lo + (bin_index - 1) * width, lo + (bin_index + 2) * width


def count_and_gather(
    chunks: Sequence[torch.Tensor], low: float, high: float
) -> tuple[int, int, torch.Tensor | None]:
    """In one pass: how many values lie below ``low``, how many in ``[low, high]``, and
    those values themselves unless there are more than ``GATHER_LIMIT``."""
    below = inside = 0
    gathered: list[torch.Tensor] | None = []
    for block in blocks(chunks):
        below += count_true(block < low)
        within = block >= low
        within &= block <= high
        found = count_true(within)
        inside += found
        if gathered is not None and found:
            if inside > GATHER_LIMIT:
                gathered = None  # too many to sort cheaply: count on, gather no more
            else:
                gathered.append(block[within])
    if gathered is None:
        return below, inside, None
    return below, inside, torch.cat(gathered) if gathered else chunks[0].new_empty(0)


def range_within(chunks: Sequence[torch.Tensor], low: float, high: float) -> tuple[float, float]:
    """Smallest and largest value in ``[low, high]`` (there must be one)."""
    lo, hi = math.inf, -math.inf
    for block in blocks(chunks):
        within = block >= low
        within &= block <= high
        if bool(within.any()):
            bounds = torch.aminmax(block[within])
            lo, hi = min(lo, float(bounds.min)), max(hi, float(bounds.max))
    return lo, hi


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
    below = neg_inf  # how many values lie under lo
    for _ in range(MAX_REFINEMENTS):
        if lo == hi:  # every value left in the search is the same: a tie holds the k-th
            return chunks[0].new_tensor(lo)
        # histc leaves out values outside [lo, hi], so infinities need no special case here.
        low, high = bracket(histogram(chunks, lo, hi), below, k, lo, hi)
        below_low, inside, candidates = count_and_gather(chunks, low, high)
        if not below_low < k <= below_low + inside:
            break  # rounding pushed the k-th value out of the bracket
        if candidates is not None:
            return candidates.kthvalue(k - below_low).values
        lo, hi = range_within(chunks, low, high)  # too many candidates: narrow further
        below = below_low
    return torch.cat([c.reshape(-1) for c in chunks]).kthvalue(k).values  # exact fallback


def tie_generator(seed: int, name: str = "") -> torch.Generator:
    """The CPU generator that breaks the ties of one selection: seeded from the run's ``seed``
    and ``name`` (the tensor a layer-wise selection covers; empty for a global one), so the
    choice is the same on every device and in every order the tensors are selected in."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def random_subset(total: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """CPU flags over ``total`` items with exactly ``count`` set, every such subset equally likely."""
    chosen = torch.zeros(total, dtype=torch.bool)
    if count >= total:
        chosen.fill_(True)
    elif count > 0:  # the generator is only drawn from where there is a choice to make
        chosen[torch.randperm(total, generator=generator)[:count]] = True
    return chosen


def mark_random_ties(
    chunks: Sequence[torch.Tensor], pruned: list[torch.Tensor], value: torch.Tensor, count: int,
    generator: torch.Generator,
) -> None:
    """Mark ``count`` of the entries equal to ``value``, chosen uniformly at random.

    Block by block: one pass counts the tied entries of each block, then ``count`` of all of
    them are drawn, and positions are only listed for the blocks that hold a drawn one.
    """
    if count <= 0:
        return
    found = [
        [count_true(flat[start : start + BLOCK] == value) for start in range(0, flat.numel(), BLOCK)]
        for flat in (chunk.reshape(-1) for chunk in chunks)
    ]
    chosen = random_subset(sum(sum(per_chunk) for per_chunk in found), count, generator)
    offset = 0
    for chunk, mark, per_chunk in zip(chunks, pruned, found):
        flat, flat_mark = chunk.reshape(-1), mark.view(-1)
        for start, tied_here in zip(range(0, flat.numel(), BLOCK), per_chunk):
            drawn = chosen[offset : offset + tied_here]
            offset += tied_here
            if not tied_here or not bool(drawn.any()):
                continue
            tied = flat[start : start + BLOCK] == value
            if bool(drawn.all()):
                flat_mark[start : start + BLOCK] |= tied
            else:
                positions = torch.nonzero(tied).squeeze(1)
                flat_mark[start : start + BLOCK][positions[drawn.to(positions.device)]] = True


def true_positions(flags: torch.Tensor) -> torch.Tensor:
    """Ascending flat positions of the True entries of a 1-D bool tensor.

    Eight flags are read as one int64 word, so the scan for the (rare) True entries looks at an
    eighth of the elements; only the words that hold one are unpacked.
    """
    whole = flags.numel() - flags.numel() % 8
    words = torch.nonzero(flags[:whole].view(torch.int64)).squeeze(1)
    word, offset = torch.nonzero(flags[:whole].view(-1, 8)[words]).unbind(1)
    found = words[word] * 8 + offset
    tail = torch.nonzero(flags[whole:]).squeeze(1) + whole
    return torch.cat([found, tail]) if tail.numel() else found


def sampled_band(chunks: Sequence[torch.Tensor], k: int, total: int) -> tuple[float, float]:
    """Bounds that hold the k-th smallest value with overwhelming probability (not certainty:
    the caller checks), from every ``SAMPLE_STRIDE``-th score."""
    sample = torch.cat([c.reshape(-1)[::SAMPLE_STRIDE] for c in chunks])
    size = sample.numel()
    fraction = k / total
    rank = fraction * size
    margin = BAND_SIGMAS * math.sqrt(size * fraction * (1 - fraction)) + BAND_SIGMAS
    low_rank, high_rank = math.floor(rank - margin), math.ceil(rank + margin)
    low = float(sample.kthvalue(low_rank).values) if low_rank >= 1 else -math.inf
    high = float(sample.kthvalue(high_rank).values) if high_rank <= size else math.inf
    # -inf scores (entries a previous mask pruned) lie under the band, never inside it.
    return max(low, LOWEST_ABOVE_NEG_INF), high


def prune_lowest_sampled(
    chunks: Sequence[torch.Tensor], k: int, total: int, generator: torch.Generator
) -> list[torch.Tensor] | None:
    """The k lowest entries via a sampled band (see the module's docstring); None when the
    band did not hold the k-th value or holds too many entries."""
    if any(c.dtype != torch.float32 for c in chunks):
        return None
    low, high = sampled_band(chunks, k, total)
    covered: list[torch.Tensor] = []  # score <= high: the pruned set, before the band is settled
    positions: list[torch.Tensor] = []  # flat positions of the band's entries, per chunk
    covered_count = in_band = 0
    total_sum = 0.0  # NaN or +inf anywhere shows in the sum (an overflow merely falls back)
    band = torch.empty(max(c.numel() for c in chunks), dtype=torch.bool, device=chunks[0].device)
    for chunk in chunks:
        flat = chunk.reshape(-1)
        marked = torch.empty(flat.numel(), dtype=torch.bool, device=flat.device)
        sums = []
        for start in range(0, flat.numel(), PASS_BLOCK):
            block, out = flat[start : start + PASS_BLOCK], marked[start : start + PASS_BLOCK]
            inside = band[start : start + block.numel()]
            sums.append(block.sum())  # the first read brings the block into cache for the two below
            torch.le(block, high, out=out)
            torch.ge(block, low, out=inside)
            inside &= out
        total_sum += float(torch.stack(sums).sum())
        where = true_positions(band[: flat.numel()])
        covered_count += count_true(marked)
        in_band += where.numel()
        if in_band > BAND_LIMIT:
            return None
        covered.append(marked)
        positions.append(where)
    if math.isnan(total_sum) or total_sum == math.inf:
        return None
    below = covered_count - in_band
    if not below <= k <= covered_count:
        return None  # the sample missed: the k-th value lies outside the band
    values = [c.reshape(-1)[where] for c, where in zip(chunks, positions)]
    rank = k - below  # how many of the band's entries are pruned
    threshold = torch.cat(values).kthvalue(rank).values if rank else None
    tied = [torch.nonzero(v == threshold).squeeze(1) for v in values] if threshold is not None else []
    if threshold is not None:  # which of the tied entries go: drawn as the module's docstring says
        ties = rank - sum(count_true(v < threshold) for v in values)
        drawn = random_subset(sum(t.numel() for t in tied), ties, generator).split([t.numel() for t in tied])
    for index, (marked, where, value) in enumerate(zip(covered, positions, values)):
        if threshold is None:
            spared = torch.ones_like(value, dtype=torch.bool)
        else:
            spared = value > threshold
            spared[tied[index][~drawn[index].to(spared.device)]] = True
        marked[where[spared]] = False
    return [marked.view(c.shape) for marked, c in zip(covered, chunks)]


def prune_lowest(chunks: Sequence[torch.Tensor], k: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Boolean 'pruned' tensors marking exactly the k lowest entries across ``chunks``; of the
    entries tied at the k-th value, ``generator`` draws which go."""
    if k <= 0:
        return [torch.zeros_like(c, dtype=torch.bool) for c in chunks]
    total = sum(c.numel() for c in chunks)
    if k >= total:
        return [torch.ones_like(c, dtype=torch.bool) for c in chunks]
    if total > SAMPLED_MIN:
        sampled = prune_lowest_sampled(chunks, k, total, generator)
        if sampled is not None:
            return sampled
    threshold = kth_smallest(chunks, k)
    pruned = [(c < threshold).contiguous() for c in chunks]
    mark_random_ties(chunks, pruned, threshold, k - sum(count_true(p) for p in pruned), generator)
    return pruned


def prune_lowest_per_row(scores: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Boolean 'pruned' flags of a 2-D tensor: in every row its ``count`` lowest entries, or
    all its -inf ones (pruned before) where there are more. Each row's k-th value is found as
    ``topk`` finds it; in the rows where only some of the entries tied at it go, which ones is
    drawn: random keys for those tied entries, the lowest keys of each row pruned."""
    rows, cols = scores.shape
    counts = torch.isneginf(scores).sum(dim=1).clamp(min=count).clamp(max=cols)
    if int(counts.max()) == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if bool((counts == counts[0]).all()):  # the usual case: one k for every row
        threshold = scores.kthvalue(int(counts[0]), dim=1, keepdim=True).values
    else:  # a previous mask pruned more of some rows; a row with nothing to prune gets -inf below
        ranked = scores.sort(dim=1).values
        threshold = ranked.gather(1, (counts - 1).clamp(min=0).unsqueeze(1))
        threshold[counts == 0] = -math.inf
    pruned = scores < threshold
    tied = scores == threshold
    tied[counts == 0] = False
    wanted = counts - pruned.sum(dim=1)  # tied entries each row must still lose
    available = tied.sum(dim=1)
    whole = wanted == available
    pruned |= tied & whole.unsqueeze(1)
    partial = torch.nonzero((wanted > 0) & ~whole).squeeze(1)
    if partial.numel():
        row, col = torch.nonzero(tied[partial]).cpu().unbind(1)  # row-major: the draw's fixed order
        keys = torch.rand(row.numel(), generator=generator, dtype=torch.float64)
        order = keys.argsort()
        order = order[row[order].argsort(stable=True)]  # by row, random within a row
        starts = torch.cumsum(available[partial].cpu(), 0) - available[partial].cpu()
        rank = torch.arange(order.numel()) - starts[row[order]]
        chosen = order[rank < wanted[partial].cpu()[row[order]]]
        pruned[partial[row[chosen].to(partial.device)], col[chosen].to(partial.device)] = True
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


def _ranked(scores: Mapping[str, torch.Tensor], previous: Mask | None) -> list[torch.Tensor]:
    """Scores as float32, with the entries a previous mask pruned at -inf (they rank first,
    so they stay pruned)."""
    if previous is not None and set(previous) != set(scores):
        raise ValueError("previous mask and scores cover different parameters")
    chunks = []
    for name, score in scores.items():
        score = score.detach().float()
        if previous is not None:
            score = score.masked_fill(~previous[name].to(score.device), -math.inf)
        chunks.append(score)
    return chunks


def select(
    scores: Mapping[str, torch.Tensor],
    keep: int,
    scope: Scope = "global",
    previous: Mask | None = None,
    *,
    seed: int = 0,
) -> Mask:
    """Keep exactly ``keep`` entries (fewer only if a previous mask already pruned more).

    ``global`` ranks all scores together; ``layer`` keeps the same fraction of every tensor.
    ``seed`` (the run's) draws which of the entries tied at the keep boundary are pruned.
    """
    names = list(scores)
    chunks = _ranked(scores, previous)
    already = [count_true(torch.isneginf(c)) if previous is not None else 0 for c in chunks]
    if scope == "global":
        to_prune = max(sum(c.numel() for c in chunks) - keep, sum(already))
        pruned = prune_lowest(chunks, to_prune, tie_generator(seed))
    elif scope == "layer":
        quotas = proportional_split(keep, [c.numel() for c in chunks])
        pruned = [
            prune_lowest([c], max(c.numel() - q, done), tie_generator(seed, name))[0]
            for name, c, q, done in zip(names, chunks, quotas, already)
        ]
    else:
        raise ConfigError(f"prune.scope must be 'global' or 'layer', got {scope!r}")
    # Inverted in place: a second set of boolean tensors would add a quarter of the scores'
    # bytes to the peak memory of a large selection.
    return Mask({name: mark.logical_not_() for name, mark in zip(names, pruned)})


def select_rows(
    scores: Mapping[str, torch.Tensor], sparsity: float, previous: Mask | None = None, *, seed: int = 0
) -> Mask:
    """Scope ``row`` of 2-D ``(out, in)`` weights: every row prunes ``round(sparsity * in)``
    entries, its lowest (more where a previous mask pruned more of it), ties drawn as in
    :func:`select` (one generator per tensor, from ``seed`` and its name)."""
    masks = {}
    for name, chunk in zip(scores, _ranked(scores, previous)):
        count = round(sparsity * chunk.shape[1])
        masks[name] = prune_lowest_per_row(chunk, count, tie_generator(seed, name)).logical_not_()
    return Mask(masks)
