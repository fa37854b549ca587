"""Selection prunes exactly k entries, the k lowest, ties at the k-th value drawn by the seed.

Each case is checked against a reference that sorts all scores: untied scores by a plain
stable sort, tied ones by the documented rule (which of the T entries tied at the k-th value
go: randperm(T) of the selection's generator, the tied entries numbered in position order).
Small SORT_LIMIT values force the histogram path that large models take, so it is covered too.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import kth_smallest, prune_lowest, select, tie_generator

# The package re-exports the function ``select``, which shadows the module's name.
select_module = importlib.import_module("prunebench.pruning.selection")


def reference_pruned(chunks: list[torch.Tensor], k: int, seed: int | None = 0) -> list[torch.Tensor]:
    """The k lowest entries over all chunks in order, by a full sort. Of the entries tied at the
    k-th value, those a randperm of ``tie_generator(seed)`` draws; with ``seed`` None, the
    first ones (a stable sort: the positional rule, which untied scores cannot tell apart)."""
    flat = torch.cat([c.reshape(-1) for c in chunks])
    marked = torch.zeros(flat.numel(), dtype=torch.bool)
    if seed is None or not 0 < k < flat.numel():
        marked[torch.sort(flat, stable=True).indices[:k]] = True
    else:
        threshold = flat.sort().values[k - 1]
        marked = flat < threshold
        tied = torch.nonzero(flat == threshold).squeeze(1)
        wanted = k - int(marked.sum())
        if wanted < tied.numel():
            tied = tied[torch.randperm(tied.numel(), generator=tie_generator(seed))[:wanted]]
        marked[tied] = True
    return [part.reshape(c.shape) for part, c in zip(marked.split([c.numel() for c in chunks]), chunks)]


def random_chunks(generator: torch.Generator, kind: str) -> list[torch.Tensor]:
    """A few score tensors of varied shapes; ``kind`` picks how many ties and infinities."""
    shapes = [(int(torch.randint(1, 40, (1,), generator=generator)), 7) for _ in range(3)] + [(13,)]
    chunks = []
    for shape in shapes:
        if kind == "continuous":
            chunk = torch.rand(shape, generator=generator)
        elif kind == "ties":  # few distinct values: most entries tie with others
            chunk = torch.randint(0, 5, shape, generator=generator).float()
        else:  # "infinite": ties plus -inf and +inf entries
            chunk = torch.randint(0, 4, shape, generator=generator).float()
            special = torch.rand(shape, generator=generator)
            chunk[special < 0.1] = -math.inf
            chunk[special > 0.9] = math.inf
        chunks.append(chunk)
    return chunks


PATHS = {  # name: (SORT_LIMIT, GATHER_LIMIT, SAMPLED_MIN)
    "sort": (1 << 20, 1 << 20, 1 << 40),  # small inputs: one kthvalue over everything
    "histogram": (0, 1 << 20, 1 << 40),  # one histogram pass, then the gathered candidates
    "refine": (0, 3, 1 << 40),  # candidates rarely fit: the search narrows again and again
    "sampled": (0, 1 << 20, 0),  # the sampled band first (the histogram when it misses)
}


@pytest.fixture(params=list(PATHS))
def sort_limit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run each test through every path that large models can take."""
    sort_limit, gather_limit, sampled_min = PATHS[request.param]
    monkeypatch.setattr(select_module, "SORT_LIMIT", sort_limit)
    monkeypatch.setattr(select_module, "GATHER_LIMIT", gather_limit)
    monkeypatch.setattr(select_module, "SAMPLED_MIN", sampled_min)
    monkeypatch.setattr(select_module, "SAMPLE_STRIDE", 3)
    monkeypatch.setattr(select_module, "PASS_BLOCK", 19)  # several blocks per tensor
    monkeypatch.setattr(select_module, "BLOCK", 17)  # several blocks per tensor
    monkeypatch.setattr(select_module, "HISTOGRAM_BINS", 8)  # coarse bins: more narrowing
    return sort_limit


@pytest.mark.parametrize("kind", ["continuous", "ties", "infinite"])
def test_prune_lowest_matches_the_reference(sort_limit: int, kind: str) -> None:
    """Every path gives the reference's mask; untied (continuous) scores give a stable sort's."""
    generator = torch.Generator().manual_seed(1234)
    for case in range(25):
        chunks = random_chunks(generator, kind)
        total = sum(c.numel() for c in chunks)
        for k in {0, 1, total // 3, total // 2, total - 1, total}:
            pruned = prune_lowest(chunks, k, tie_generator(case))
            expected = reference_pruned(chunks, k, None if kind == "continuous" else case)
            assert sum(int(p.sum()) for p in pruned) == k
            for got, want in zip(pruned, expected):
                assert torch.equal(got, want)


@pytest.mark.parametrize("kind", ["continuous", "ties", "infinite"])
def test_kth_smallest_matches_sort(sort_limit: int, kind: str) -> None:
    generator = torch.Generator().manual_seed(99)
    for _ in range(25):
        chunks = random_chunks(generator, kind)
        flat = torch.cat([c.reshape(-1) for c in chunks]).sort().values
        for k in (1, flat.numel() // 2, flat.numel()):
            assert kth_smallest(chunks, k).item() == flat[k - 1].item()


def test_constant_scores_prune_a_seeded_draw(sort_limit: int) -> None:
    """One tie over everything: exactly k pruned, the reference's draw, different seeds
    differ and none of them is simply the first positions."""
    chunks = [torch.full((5, 4), 0.5), torch.full((10,), 0.5)]
    masks = []
    for seed in range(4):
        pruned = prune_lowest(chunks, 23, tie_generator(seed))
        assert sum(int(p.sum()) for p in pruned) == 23
        for got, want in zip(pruned, reference_pruned(chunks, 23, seed)):
            assert torch.equal(got, want)
        masks.append(torch.cat([p.reshape(-1) for p in pruned]))
        assert not bool(masks[-1][:23].all())
    assert len({tuple(m.tolist()) for m in masks}) == 4


def test_global_select_keeps_exactly_keep_and_respects_previous(sort_limit: int) -> None:
    generator = torch.Generator().manual_seed(7)
    scores = {
        "a.weight": torch.randint(0, 6, (30, 8), generator=generator).float(),
        "b.weight": torch.randint(0, 6, (50,), generator=generator).float(),
    }
    first = select(scores, keep=200, scope="global")
    assert first.kept == 200
    second = select(scores, keep=120, scope="global", previous=first)
    assert second.kept == 120
    assert second.is_subset_of(first)
    # Previously pruned entries count as the lowest scores of all.
    chunks = [s.masked_fill(~first[n], -math.inf) for n, s in scores.items()]
    expected = reference_pruned(chunks, 290 - 120, seed=0)
    for name, want in zip(scores, expected):
        assert torch.equal(second[name], ~want)


def test_layer_select_keeps_the_same_fraction_of_each_tensor(sort_limit: int) -> None:
    generator = torch.Generator().manual_seed(3)
    scores = {"a": torch.rand(40, 10, generator=generator), "b": torch.rand(100, generator=generator)}
    mask = select(scores, keep=250, scope="layer")
    assert mask.kept == 250
    assert [int(mask[n].sum()) for n in scores] == [200, 50]
    assert isinstance(mask, Mask)


def test_nan_scores_are_rejected_on_the_histogram_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select_module, "SORT_LIMIT", 0)
    with pytest.raises(ValueError, match="NaN"):
        kth_smallest([torch.tensor([0.1, math.nan, 0.3])], 2)


def sampled_pass_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make the sampled band the path large selections take, and record whether it answered
    (True) or handed over to the histogram search (False)."""
    monkeypatch.setattr(select_module, "SAMPLED_MIN", 0)
    answered: list[bool] = []
    sampled = select_module.prune_lowest_sampled

    def recording(*args: object) -> object:
        result = sampled(*args)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(select_module, "prune_lowest_sampled", recording)
    return answered


def test_sampled_band_with_many_ties_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight distinct values over 200,000 entries: the k-th value is one huge tie, drawn
    across chunks and blocks."""
    answered = sampled_pass_answers(monkeypatch)
    monkeypatch.setattr(select_module, "PASS_BLOCK", 4099)
    generator = torch.Generator().manual_seed(5)
    chunks = [torch.randint(0, 8, shape, generator=generator).float() for shape in [(300, 301), (1000, 109), (3,)]]
    total = sum(c.numel() for c in chunks)
    for k in (1, 7, total // 8, total // 2 + 1, total - 1):
        pruned = prune_lowest(chunks, k, tie_generator(k))
        for got, want in zip(pruned, reference_pruned(chunks, k, seed=k)):
            assert torch.equal(got, want)
    assert any(answered), "the sampled band never answered: the test checked only the fallback"


def test_sampled_band_at_its_boundaries_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The k-th value equal to the band's bounds, a band that misses it (the fallback answers),
    and -inf entries of a previous mask lying under the band."""
    answered = sampled_pass_answers(monkeypatch)
    generator = torch.Generator().manual_seed(8)
    scores = torch.rand(50_000, generator=generator)
    chunks = [scores[:20_005].clone(), scores[20_005:].clone().reshape(-1, 5)]
    total = scores.numel()
    low, high = select_module.sampled_band(chunks, total // 2, total)
    k_low = int((scores < low).sum()) + 1  # the k-th value is exactly the band's lower bound
    k_high = int((scores <= high).sum())  # ... exactly its upper bound
    for k in (k_low, k_high, k_low - 1, k_high + 1):
        for got, want in zip(prune_lowest(chunks, k, tie_generator(0)), reference_pruned(chunks, k)):
            assert torch.equal(got, want)
    # A sample that misses: the scores rise with position except at the sampled (every third)
    # places, so the sample ranks them wrongly; the histogram search must answer, exactly.
    answered.clear()
    monkeypatch.setattr(select_module, "SAMPLE_STRIDE", 3)
    rising = torch.arange(30_000, dtype=torch.float32)
    rising[::3] = 1e6
    for got, want in zip(prune_lowest([rising], 15_000, tie_generator(0)), reference_pruned([rising], 15_000)):
        assert torch.equal(got, want)
    assert answered == [False]
    # Already-pruned entries (-inf) and the k-th value among them.
    pruned_before = chunks[0].clone()
    pruned_before[::5] = -math.inf
    mixed = [pruned_before, chunks[1]]
    already = int(torch.isneginf(pruned_before).sum())
    for k in (already - 3, already, already + 1, total // 2):
        for got, want in zip(prune_lowest(mixed, k, tie_generator(0)), reference_pruned(mixed, k)):
            assert torch.equal(got, want)


def test_sampled_band_rejects_nan_like_the_histogram_path(monkeypatch: pytest.MonkeyPatch) -> None:
    answered = sampled_pass_answers(monkeypatch)
    monkeypatch.setattr(select_module, "SORT_LIMIT", 0)
    scores = torch.rand(10_000)
    scores[1234] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        prune_lowest([scores], 5_000, tie_generator(0))
    assert answered == [False]


def test_global_selection_equals_torch_global_unstructured() -> None:
    """On the large-model path, the mask equals torch.nn.utils.prune's global L1 mask bit for
    bit (continuous scores: no ties, whose order torch leaves unspecified)."""
    from torch import nn
    from torch.nn.utils import prune as torch_prune

    torch.manual_seed(0)
    layers = [nn.Linear(1200, 700), nn.Linear(700, 900), nn.Linear(900, 10)]
    scores = {f"{i}.weight": layer.weight.detach().abs() for i, layer in enumerate(layers)}
    total = sum(s.numel() for s in scores.values())
    assert total > select_module.SAMPLED_MIN  # the default path of a model this size
    keep = total // 9
    mask = select(scores, keep, "global")
    torch_prune.global_unstructured(
        [(layer, "weight") for layer in layers], pruning_method=torch_prune.L1Unstructured, amount=total - keep
    )
    for i, layer in enumerate(layers):
        assert torch.equal(mask[f"{i}.weight"], layer.weight_mask.bool())
