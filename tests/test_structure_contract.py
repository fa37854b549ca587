"""The structure contract and the allocation contract, over their registries.

Every registered structure, built-in or added later, runs through the same checks without an
entry here: its example text parses back to it; its declarations hold together (a registered
random control that scores it, at least one schedule it follows, how ``prune.prunable.exclude``
applies). A weight structure (one that selects from weight scores itself) also keeps exactly the
count it says for a target, in scope global and layer, with scores full of ties; gives the same
mask for the same seed and another one for another seed where ties decide; only shrinks an
earlier mask (or refuses one, if it cannot refine); accepts its own masks and rejects a broken
one; and its random control keeps as much as a method does. Channel selection's own exactness
is checked per strategy in test_strategy_contract.py (``check_channel_target``).

Every registered layer allocation of language models: one sparsity per block whose mean is the
target, refusals where it cannot serve a target, and the dense scores read exactly when it
declares it needs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from prunebench.catalog import SCHEDULES
from prunebench.config import PruneSpec
from prunebench.data import DataSplits
from prunebench.errors import ConfigError
from prunebench.models import create_model
from prunebench.pruning import Mask, prunable_parameters
from prunebench.pruning.allocations import ALLOCATIONS, parse_allocation
from prunebench.pruning.prune import keep_count, prune_model
from prunebench.pruning.scores import STRATEGIES
from prunebench.pruning.structures import STRUCTURES, WeightStructure, check_structure, parse_structure

SHAPES = {"fc1.weight": (16, 32), "conv.weight": (8, 8, 2, 2), "fc2.weight": (8, 16)}
ALL = STRUCTURES.names()
WEIGHTS = [kind for kind in ALL if issubclass(STRUCTURES.get(kind), WeightStructure)]


def weight_structure(kind: str) -> WeightStructure:
    structure = parse_structure(STRUCTURES.get(kind).example)
    assert isinstance(structure, WeightStructure)
    return structure


def tied_scores(seed: int, levels: int = 3) -> dict[str, torch.Tensor]:
    """Scores with a few distinct values, so that ties sit at every keep boundary."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randint(0, levels, shape, generator=generator).float() for name, shape in SHAPES.items()}


def shapes() -> dict[str, torch.Size]:
    return {name: torch.Size(shape) for name, shape in SHAPES.items()}


def target_keep(structure: WeightStructure, fraction: float) -> int:
    total = sum(s.numel() for s in shapes().values())
    return structure.keep_count(shapes(), lambda: round(fraction * total))


def test_the_registry_holds_the_built_in_structures() -> None:
    assert {"unstructured", "nm", "block", "channel"} <= set(ALL)
    assert {"unstructured", "nm", "block"} <= set(WEIGHTS) and "channel" not in WEIGHTS


@pytest.mark.parametrize("kind", ALL)
def test_its_example_parses_back_to_it(kind: str) -> None:
    cls = STRUCTURES.get(kind)
    structure = parse_structure(cls.example)
    assert type(structure) is cls and structure.kind == kind
    assert structure.text == cls.example and parse_structure(structure.text) == structure
    with pytest.raises(ConfigError, match=r"^prune.structure: must be .*got 'no-such-structure'$"):
        parse_structure("no-such-structure")


@pytest.mark.parametrize("kind", ALL)
def test_its_declarations_hold_together(kind: str) -> None:
    structure = parse_structure(STRUCTURES.get(kind).example)
    control = STRATEGIES.get(structure.random_control)  # registered
    assert kind in control.structures  # the control scores this structure
    assert any(kind in STRATEGIES.get(n).structures for n in STRATEGIES.names() if n != structure.random_control)
    assert structure.accepts_schedule(SCHEDULES.get("one-shot"))  # every structure prunes once
    refining = [n for n in SCHEDULES.names() if SCHEDULES.get(n).refines_masks]
    if not structure.refines_masks:  # then it follows no schedule that prunes inside an earlier mask
        assert refining and not any(structure.accepts_schedule(SCHEDULES.get(n)) for n in refining)
    assert structure.exclude and structure.spelling
    assert (structure.fixed_sparsity is None) == bool(structure.target_kinds)  # a target, or its own fixed ratio
    refused = [k for k in ("compression", "speedup", "channel_fraction") if k not in structure.target_kinds]
    for target in refused:
        with pytest.raises(ValueError, match=rf"prune.{target}|prune.structure"):
            PruneSpec(strategy=structure.random_control, structure=structure.text, **{target: 2.0 if target != "channel_fraction" else 0.3})


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("kind", WEIGHTS)
def test_it_keeps_exactly_its_count_among_ties(kind: str, scope: str) -> None:
    structure = weight_structure(kind)
    for fraction in (0.2, 0.5, 0.8):
        keep = target_keep(structure, fraction)
        mask = structure.select(tied_scores(0), keep, scope, seed=0)  # type: ignore[arg-type]
        assert structure.violations(mask) == []
        assert structure.kept_units(mask) == structure.units_to_keep(shapes(), keep), (fraction, scope)


@pytest.mark.parametrize("kind", WEIGHTS)
def test_the_same_seed_gives_the_same_mask_and_ties_follow_the_seed(kind: str) -> None:
    structure = weight_structure(kind)
    keep = target_keep(structure, 0.5)
    scores = tied_scores(1, levels=2)
    masks = [structure.select(scores, keep, seed=seed) for seed in range(6)]
    again = structure.select(scores, keep, seed=0)
    assert all(torch.equal(masks[0][n], again[n]) for n in SHAPES)
    assert any(not torch.equal(masks[0][n], other[n]) for other in masks[1:] for n in SHAPES)


@pytest.mark.parametrize("kind", WEIGHTS)
def test_pruning_inside_an_earlier_mask_only_shrinks_it(kind: str) -> None:
    structure = weight_structure(kind)
    first = structure.select(tied_scores(2), target_keep(structure, 0.6), seed=0)
    if not structure.refines_masks:  # it cannot keep its pattern inside another mask: refused
        with pytest.raises(ConfigError, match="cannot refine an earlier mask"):
            structure.select(tied_scores(3), target_keep(structure, 0.3), previous=first, seed=1)
        return
    keep = target_keep(structure, 0.3)
    second = structure.select(tied_scores(3), keep, previous=first, seed=1)
    assert all(not bool((second[n] & ~first[n]).any()) for n in SHAPES)  # nothing pruned comes back
    assert structure.violations(second) == []
    assert structure.kept_units(second) == structure.units_to_keep(shapes(), keep)


@pytest.mark.parametrize("kind", WEIGHTS)
def test_it_accepts_its_own_masks_and_rejects_a_broken_one(kind: str) -> None:
    structure = weight_structure(kind)
    mask = structure.select(tied_scores(4), target_keep(structure, 0.5), seed=0)
    check_structure(mask, structure)
    name = "fc1.weight"
    broken = mask[name].clone()
    broken.view(-1)[int(broken.view(-1).nonzero()[0])] = False  # one kept entry pruned alone
    broken_mask = Mask({**dict(mask.items()), name: broken})
    if structure.any_mask:  # unstructured: every mask has the structure
        assert structure.violations(broken_mask) == []
        return
    assert structure.violations(broken_mask)
    with pytest.raises(ValueError, match="mask breaks structure"):
        check_structure(broken_mask, structure)


@pytest.mark.parametrize("kind", WEIGHTS)
def test_its_random_control_keeps_what_a_method_keeps(kind: str, synthetic: DataSplits) -> None:
    structure = weight_structure(kind)
    kept = []
    for strategy in ("magnitude", structure.random_control):
        torch.manual_seed(0)
        model = create_model("mlp", synthetic.input_shape, synthetic.num_classes)
        spec = PruneSpec(strategy=strategy, structure=structure.text, score_batches=1, batch_size=32)
        mask = prune_model(model, synthetic, spec, seed=0)
        params = prunable_parameters(model, spec.prunable)
        expected = structure.units_to_keep({n: p.shape for n, p in params.items()}, keep_count(model, spec))
        assert structure.kept_units(mask) == expected, strategy
        kept.append(structure.kept_units(mask))
    assert kept[0] == kept[1]


# ---------------------------------------------------------------------------------------------
# Layer allocations of language models


def block_scores(blocks: int) -> Iterator[list[torch.Tensor]]:
    """Dense scores whose outliers differ from block to block (block i: i + 1 outliers)."""
    for index in range(blocks):
        scores = torch.ones(64)
        scores[: index + 1] = 100.0
        yield [scores.reshape(8, 8)]


@pytest.mark.parametrize("name", ALLOCATIONS.names())
def test_an_allocation_spreads_the_target_over_the_blocks(name: str) -> None:
    allocation = parse_allocation(name)
    read: list[int] = []

    def scores() -> Iterator[list[torch.Tensor]]:
        read.append(1)
        return block_scores(4)

    values = allocation.sparsities(0.5, 4, scores)
    assert len(values) == 4 and all(v is not None and 0 <= v < 1 for v in values)
    assert sum(v for v in values if v is not None) / 4 == pytest.approx(0.5, abs=1e-12)
    assert bool(read) == allocation.needs_scores
    assert (len(set(values)) > 1) == allocation.per_block  # these blocks differ, so a per-block one follows


@pytest.mark.parametrize("name", ALLOCATIONS.names())
def test_an_allocation_refuses_what_it_cannot_serve(name: str) -> None:
    allocation = parse_allocation(name)
    for fixed, scope in ((True, "row"), (False, "global")):
        if allocation.per_block:
            with pytest.raises(ConfigError, match=rf"^prune.allocation '{name}'"):
                allocation.check(fixed_sparsity=fixed, scope=scope)
        else:
            allocation.check(fixed_sparsity=fixed, scope=scope)
    allocation.check(fixed_sparsity=False, scope="row")
    with pytest.raises(ConfigError, match=r"^prune.allocation: unknown allocation"):
        parse_allocation(name + "ish")


@pytest.mark.parametrize("name", ALLOCATIONS.names())
def test_an_allocation_prunes_a_language_model_to_its_target(name: str) -> None:
    pytest.importorskip("transformers")
    from lm_tiny import tiny_llama

    from prunebench.pruning.layerwise import prune_causal_lm

    calibration = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(0))
    outcome = prune_causal_lm(tiny_llama(layers=3), calibration, "wanda", sparsity=0.5, allocation=name, seed=0)
    assert outcome.mask.total - outcome.mask.kept == pytest.approx(0.5 * outcome.mask.total, rel=0.02)
