"""Selection prunes exact counts, for every registered strategy and both scopes."""

import importlib

import pytest
import torch

from prunebench.config import PruneSpec
from prunebench.data import DataSplits
from prunebench.models import create_model
from prunebench.pruning import STRATEGIES, Mask, prunable_parameters, select
from prunebench.pruning.prune import keep_count, prune_model
from prunebench.pruning.select import kth_smallest, prune_lowest, proportional_split

select_module = importlib.import_module("prunebench.pruning.select")  # the package re-exports the function


@pytest.mark.parametrize("strategy", STRATEGIES.names())
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("compression", [2.0, 7.3, 20.0])
def test_every_strategy_hits_the_target_count_exactly(
    synthetic: DataSplits, strategy: str, scope: str, compression: float
) -> None:
    model = create_model("mlp", synthetic.input_shape, synthetic.num_classes)
    spec = PruneSpec(strategy=strategy, scope=scope, compression=compression, score_batches=2)
    expected_keep = keep_count(model, spec)
    mask = prune_model(model, synthetic, spec, seed=0)
    assert mask.kept == expected_keep
    total = sum(p.numel() for p in model.parameters())
    unprunable = total - mask.total
    assert unprunable + mask.kept == round(total / compression)
    params = prunable_parameters(model)
    for name, keep in mask.items():  # the model's pruned weights are exactly the mask's
        assert torch.equal(params[name].detach() != 0, keep)
    if scope == "layer":  # the same fraction of every tensor, up to one entry of rounding
        fractions = [float(m.float().mean()) for m in mask.values()]
        sizes = [m.numel() for m in mask.values()]
        for fraction, size in zip(fractions, sizes):
            assert abs(fraction - expected_keep / mask.total) <= 1 / size + 1e-12


def test_global_selection_keeps_the_highest_scores() -> None:
    scores = {"a": torch.tensor([5.0, 1.0, 3.0]), "b": torch.tensor([[2.0, 6.0], [4.0, 0.5]])}
    mask = select(scores, keep=3, scope="global")
    assert mask["a"].tolist() == [True, False, False]
    assert mask["b"].tolist() == [[False, True], [True, False]]


def test_ties_are_broken_by_position_deterministically() -> None:
    scores = {"a": torch.zeros(4), "b": torch.zeros(4)}
    mask = select(scores, keep=5, scope="global")
    assert mask["a"].tolist() == [False, False, False, True]
    assert mask["b"].tolist() == [True, True, True, True]


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
        pruned = prune_lowest(chunks, k)
        assert sum(int(p.sum()) for p in pruned) == k


def test_proportional_split_is_exact() -> None:
    counts = proportional_split(1000, [3, 7, 11, 13])
    assert sum(counts) == 1000
    assert all(abs(c - 1000 * s / 34) < 1 for c, s in zip(counts, [3, 7, 11, 13]))
