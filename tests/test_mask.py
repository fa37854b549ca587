import pytest
import torch
from torch import nn

from prunebench.pruning import Mask


def test_mask_counts_and_sparsity() -> None:
    mask = Mask({"a": torch.tensor([True, False, False, True]), "b": torch.ones(2, 3, dtype=torch.bool)})
    assert (mask.total, mask.kept, mask.pruned) == (10, 8, 2)
    assert mask.sparsity == pytest.approx(0.2)
    assert mask.layer_sparsity() == {"a": 0.5, "b": 0.0}


def test_mask_rejects_non_bool() -> None:
    with pytest.raises(TypeError, match="must be bool"):
        Mask({"a": torch.ones(3)})


def test_intersection_only_shrinks() -> None:
    old = Mask({"w": torch.tensor([True, True, False])})
    new = Mask({"w": torch.tensor([False, True, True])})
    both = old & new
    assert both["w"].tolist() == [False, True, False]
    assert both.is_subset_of(old) and both.is_subset_of(new)
    assert not old.is_subset_of(both)


def test_validate_for_model_checks_names_and_shapes() -> None:
    model = nn.Linear(3, 2)
    Mask({"weight": torch.ones(2, 3, dtype=torch.bool)}).validate_for(model)
    with pytest.raises(ValueError, match="not a parameter"):
        Mask({"nope": torch.ones(2, 3, dtype=torch.bool)}).validate_for(model)
    with pytest.raises(ValueError, match="shape"):
        Mask({"weight": torch.ones(3, 2, dtype=torch.bool)}).validate_for(model)


def test_apply_zeroes_pruned_entries() -> None:
    model = nn.Linear(2, 2, bias=False)
    Mask({"weight": torch.tensor([[True, False], [False, True]])}).apply(model)
    assert model.weight[0, 1] == 0 and model.weight[1, 0] == 0
    assert model.weight[0, 0] != 0 and model.weight[1, 1] != 0


def test_apply_in_blocks_equals_one_multiply(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parameter larger than a block is zeroed block by block, with the result of one multiply
    (the blocks keep the float copy of the mask small; the last block is a partial one)."""
    import prunebench.pruning.mask as mask_module

    monkeypatch.setattr(mask_module, "APPLY_BLOCK", 7)
    model = nn.Linear(10, 5, bias=False)
    keep = torch.rand(5, 10, generator=torch.Generator().manual_seed(0)) > 0.5
    expected = model.weight.detach() * keep
    Mask({"weight": keep}).apply(model)
    assert torch.equal(model.weight.detach(), expected)
    assert int((model.weight[~keep] != 0).sum()) == 0
