"""Selection prunes exactly k entries, the k lowest, ties broken by position.

Each case is checked against a reference that sorts all scores with a stable sort. Small
SORT_LIMIT values force the histogram path that large models take, so it is covered here too.
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from prunebench.pruning.mask import Mask
from prunebench.pruning.select import kth_smallest, prune_lowest, select

# The package re-exports the function ``select``, which shadows the module's name.
select_module = importlib.import_module("prunebench.pruning.select")


def reference_pruned(chunks: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """The k lowest entries by a stable sort over all chunks in order: ties go to the first."""
    flat = torch.cat([c.reshape(-1) for c in chunks])
    order = torch.sort(flat, stable=True).indices
    marked = torch.zeros(flat.numel(), dtype=torch.bool)
    marked[order[:k]] = True
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


PATHS = {  # name: (SORT_LIMIT, GATHER_LIMIT)
    "sort": (1 << 20, 1 << 20),  # small inputs: one kthvalue over everything
    "histogram": (0, 1 << 20),  # one histogram pass, then the gathered candidates
    "refine": (0, 3),  # candidates rarely fit: the search narrows again and again
}


@pytest.fixture(params=list(PATHS))
def sort_limit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run each test through every path that large models can take."""
    sort_limit, gather_limit = PATHS[request.param]
    monkeypatch.setattr(select_module, "SORT_LIMIT", sort_limit)
    monkeypatch.setattr(select_module, "GATHER_LIMIT", gather_limit)
    monkeypatch.setattr(select_module, "BLOCK", 17)  # several blocks per tensor
    monkeypatch.setattr(select_module, "HISTOGRAM_BINS", 8)  # coarse bins: more narrowing
    return sort_limit


@pytest.mark.parametrize("kind", ["continuous", "ties", "infinite"])
def test_prune_lowest_matches_stable_sort(sort_limit: int, kind: str) -> None:
    generator = torch.Generator().manual_seed(1234)
    for _ in range(25):
        chunks = random_chunks(generator, kind)
        total = sum(c.numel() for c in chunks)
        for k in {0, 1, total // 3, total // 2, total - 1, total}:
            pruned = prune_lowest(chunks, k)
            expected = reference_pruned(chunks, k)
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


def test_constant_scores_prune_the_first_positions(sort_limit: int) -> None:
    chunks = [torch.full((5, 4), 0.5), torch.full((10,), 0.5)]
    pruned = prune_lowest(chunks, 23)
    assert bool(pruned[0].all())
    assert pruned[1].tolist() == [True] * 3 + [False] * 7


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
    expected = reference_pruned(chunks, 290 - 120)
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
