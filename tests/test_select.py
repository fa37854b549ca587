"""Selection prunes exact counts, for both scopes (every strategy: test_strategy_contract.py)."""

import importlib

import pytest
import torch

from prunebench.pruning import Mask, select
from prunebench.pruning.selection import kth_smallest, proportional_split, prune_lowest, tie_generator

select_module = importlib.import_module("prunebench.pruning.selection")  # the package re-exports the function


def test_global_selection_keeps_the_highest_scores() -> None:
    scores = {"a": torch.tensor([5.0, 1.0, 3.0]), "b": torch.tensor([[2.0, 6.0], [4.0, 0.5]])}
    mask = select(scores, keep=3, scope="global")
    assert mask["a"].tolist() == [True, False, False]
    assert mask["b"].tolist() == [[False, True], [True, False]]


def test_ties_are_drawn_by_the_seed_deterministically() -> None:
    scores = {"a": torch.zeros(4), "b": torch.zeros(4)}
    masks = [select(scores, keep=5, scope="global", seed=seed) for seed in range(6)]
    assert all(mask.kept == 5 for mask in masks)
    same = select(scores, keep=5, scope="global", seed=3)
    assert all(torch.equal(same[n], masks[3][n]) for n in scores)
    flat = {tuple(torch.cat([m["a"], m["b"]]).tolist()) for m in masks}
    assert len(flat) > 1  # the seed decides, not the position


def test_previous_mask_only_shrinks_even_if_old_scores_are_high() -> None:
    previous = Mask({"w": torch.tensor([False, True, True, True, True, True])})
    scores = {"w": torch.tensor([100.0, 1.0, 2.0, 3.0, 4.0, 5.0])}
    mask = select(scores, keep=3, scope="global", previous=previous)
    assert mask["w"].tolist() == [False, False, False, True, True, True]
    assert mask.is_subset_of(previous)
    layer = select(scores, keep=3, scope="layer", previous=previous)
    assert layer.is_subset_of(previous) and layer.kept == 3


def test_histogram_path_matches_a_full_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select_module, "SORT_LIMIT", 10)
    generator = torch.Generator().manual_seed(3)
    chunks = [torch.randn(300, generator=generator), torch.randn(17, 20, generator=generator).abs()]
    chunks[0][:40] = 0.25  # a block of ties
    chunks[1][0, :5] = -float("inf")  # already-pruned entries
    flat = torch.cat([c.reshape(-1) for c in chunks])
    for k in (1, 5, 6, 37, 200, 321, 639):
        assert kth_smallest(chunks, k) == flat.sort().values[k - 1]
        pruned = prune_lowest(chunks, k, tie_generator(k))
        assert sum(int(p.sum()) for p in pruned) == k


def test_proportional_split_is_exact() -> None:
    counts = proportional_split(1000, [3, 7, 11, 13])
    assert sum(counts) == 1000
    assert all(abs(c - 1000 * s / 34) < 1 for c, s in zip(counts, [3, 7, 11, 13]))
