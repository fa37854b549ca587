"""One tie rule for every selection: ties at the keep boundary are drawn by the run's seed.

Scores are rounded to a few levels so that ties at the boundary are everywhere. In every
structure and scope (unstructured global and layer, N:M, blocks, channels, a language model's
rows, layers and global selection) the counts stay exact, the same seed gives the same mask and
other seeds other masks, and over many seeds every tied position is kept equally often: a
chi-square test that passes for the seeded rule and fails for a positional one.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from prunebench.pruning.channels import ChannelTarget, channel_graph, select_channels
from prunebench.pruning.layerwise import keep_from_scores, lm_prunable, prune_causal_lm
from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import LayerTarget
from prunebench.pruning.selection import select, select_rows
from prunebench.pruning.structures import check_structure, parse_structure, select_structured

SEEDS = range(300)
PASSES = 1e-3  # the seeded rule's p-value must exceed this (the seeds are fixed: no flakiness)
FAILS = 1e-6  # ... and a positional rule's must fall below this


def tied(shape: tuple[int, ...], seed: int, levels: int = 4) -> torch.Tensor:
    """Scores with only ``levels`` distinct values: most entries tie with many others."""
    return torch.randint(0, levels, shape, generator=torch.Generator().manual_seed(seed)).float()


def seeded_rule_and_positional_rule(counts: torch.Tensor, positional: torch.Tensor) -> None:
    """The chi-square test of equal frequencies over the tied positions: the seeded rule's
    counts pass it, the positional rule's (same trials, ties to the first) fail it."""
    assert int(counts.sum()) == int(positional.sum())  # the same number of draws
    assert chisquare(counts.double().numpy()).pvalue > PASSES
    assert chisquare(positional.double().numpy()).pvalue < FAILS


def first_ties_pruned(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The positional rule: the ``count`` lowest of a 1-D tensor by a stable sort (the first of
    tied entries go first), as pruned flags."""
    pruned = torch.zeros(scores.numel(), dtype=torch.bool)
    pruned[torch.sort(scores, stable=True).indices[:count]] = True
    return pruned


# ---------------------------------------------------------------------------------------------
# Exact counts, the same seed the same mask, other seeds other masks


def classifier_scores(seed: int) -> dict[str, torch.Tensor]:
    return {"fc1.weight": tied((12, 16), seed), "conv.weight": tied((4, 8, 2, 2), seed + 1000),
            "fc2.weight": tied((6, 8), seed + 2000)}


SELECTIONS: dict[str, Callable[[dict[str, torch.Tensor], int], Mask]] = {
    "global": lambda s, seed: select(s, 200, "global", seed=seed),
    "layer": lambda s, seed: select(s, 200, "layer", seed=seed),
    "2:4": lambda s, seed: select_structured(s, 0, parse_structure("2:4"), seed=seed),
    "block": lambda s, seed: select_structured(s, 192, parse_structure("block:2x2"), "global", seed=seed),
    "block-layer": lambda s, seed: select_structured(s, 192, parse_structure("block:2x2"), "layer", seed=seed),
    "lm-row": lambda s, seed: Mask({n: keep_from_scores(v.reshape(v.shape[0], -1), LayerTarget(sparsity=0.5, scope="row"),
                                                        name=n, seed=seed).reshape(v.shape) for n, v in s.items()}),
    "lm-layer": lambda s, seed: Mask({n: keep_from_scores(v.reshape(v.shape[0], -1), LayerTarget(sparsity=0.4, scope="layer"),
                                                          name=n, seed=seed).reshape(v.shape) for n, v in s.items()}),
    "lm-2:4": lambda s, seed: Mask({n: keep_from_scores(v.reshape(v.shape[0], -1), LayerTarget(n=2, m=4),
                                                        name=n, seed=seed).reshape(v.shape) for n, v in s.items()}),
}
EXPECTED_KEPT = {  # per tensor where the structure fixes it
    "lm-row": {"fc1.weight": 12 * 8, "conv.weight": 4 * 16, "fc2.weight": 6 * 4},
    "lm-layer": {"fc1.weight": 192 - 77, "conv.weight": 128 - 51, "fc2.weight": 48 - 19},
}


@pytest.mark.parametrize("kind", list(SELECTIONS))
def test_tied_scores_give_exact_counts_and_a_mask_fixed_by_the_seed(kind: str) -> None:
    scores = classifier_scores(0)
    masks = [SELECTIONS[kind](scores, seed) for seed in range(5)]
    for mask in masks:
        if kind in ("global", "layer"):
            assert mask.kept == 200
        elif kind.startswith("block"):
            assert mask.kept == 192
            check_structure(mask, parse_structure("block:2x2"))
        elif kind.endswith("2:4"):  # a language model's weights are 2-D: its groups run along the rows
            check_structure(Mask({n: k.reshape(k.shape[0], -1) for n, k in mask.items()}) if kind == "lm-2:4" else mask,
                            parse_structure("2:4"))
            assert mask.kept == mask.total // 2
        else:
            assert {n: int(k.sum()) for n, k in mask.items()} == EXPECTED_KEPT[kind]
        if kind == "lm-row":
            assert all(bool((k.reshape(k.shape[0], -1).sum(1) == k[0].numel() // 2).all()) for k in mask.values())
        if kind == "layer":
            assert [int(k.sum()) for k in mask.values()] == [104, 70, 26]  # 200 split 192 : 128 : 48
    again = SELECTIONS[kind](scores, 3)
    assert all(torch.equal(again[n], masks[3][n]) for n in scores)  # the same seed: the same mask
    distinct = {tuple(torch.cat([m[n].reshape(-1) for n in scores]).tolist()) for m in masks}
    assert len(distinct) == len(masks)  # every seed another mask: the ties are drawn, not placed
    # Only tied entries differ between seeds: every strictly lower one is pruned, every strictly
    # higher one kept, in each seed's mask alike (checked for the unstructured global scope).
    if kind == "global":
        flat = torch.cat([scores[n].reshape(-1) for n in scores])
        threshold = flat.sort().values[flat.numel() - 200 - 1]
        for mask in masks:
            kept = torch.cat([mask[n].reshape(-1) for n in scores])
            assert not bool(kept[flat < threshold].any()) and bool(kept[flat > threshold].all())


def test_tied_selections_with_a_previous_mask_only_shrink() -> None:
    scores = classifier_scores(1)
    for seed in range(3):
        first = select(scores, 300, "global", seed=seed)
        for scope in ("global", "layer"):
            second = select(scores, 150, scope, first, seed=seed + 10)  # type: ignore[arg-type]
            assert second.is_subset_of(first) and second.kept == 150
        rows = select_rows({n: s.reshape(s.shape[0], -1) for n, s in scores.items()}, 0.6,
                           Mask({n: k.reshape(k.shape[0], -1) for n, k in first.items()}), seed=seed)
        assert all(not bool((rows[n].reshape(k.shape) & ~k).any()) for n, k in first.items())


# ---------------------------------------------------------------------------------------------
# Over many seeds, each tied position kept equally often


def test_global_and_layer_ties_are_uniform_over_seeds() -> None:
    # 0.5 five times (positions 1, 2 of "a" and 0, 1, 4 of "b"); pruning 3 takes 0.1, 0.2 and one 0.5
    scores = {"a": torch.tensor([0.1, 0.5, 0.5, 0.9]), "b": torch.tensor([0.5, 0.5, 0.2, 0.8, 0.5])}
    flat = torch.cat(list(scores.values()))
    ties = flat == 0.5
    for scope, keep in (("global", 6), ("layer", 6)):
        counts = torch.zeros(int(ties.sum()))
        for seed in SEEDS:
            mask = select(scores, keep, scope, seed=seed)  # type: ignore[arg-type]
            kept = torch.cat([mask["a"], mask["b"]])
            if scope == "global":
                assert int((~kept[ties]).sum()) == 1  # exactly one of the five goes
            counts += (~kept[ties]).float()
        if scope == "global":
            positional = first_ties_pruned(flat, 3)[ties].float() * len(SEEDS)
            seeded_rule_and_positional_rule(counts, positional)
        else:  # layer: "a" keeps 3 of 4 (prunes 0.1), "b" 3 of 5 (0.2 and one of its three 0.5)
            b_counts = counts[2:]
            positional = first_ties_pruned(scores["b"], 2)[scores["b"] == 0.5].float() * len(SEEDS)
            seeded_rule_and_positional_rule(b_counts, positional)
            assert int(counts[:2].sum()) == 0


def test_nm_and_lm_row_ties_are_uniform_over_seeds() -> None:
    # every group of four / row of eight: one low entry and three (or seven) tied ones
    groups = torch.tensor([[0.5, 0.1, 0.5, 0.5]] * 20)
    rows = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5]] * 10)
    nm_counts, row_counts = torch.zeros(4), torch.zeros(8)
    for seed in SEEDS[:60]:
        nm = select_structured({"w": groups}, 0, parse_structure("2:4"), seed=seed)["w"]
        nm_counts += (~nm).float().sum(0)
        row = keep_from_scores(rows, LayerTarget(sparsity=0.25, scope="row"), name="w", seed=seed)
        row_counts += (~row).float().sum(0)
    assert int(nm_counts[1]) == 60 * 20 and int(row_counts[4]) == 60 * 10  # the lowest always go
    nm_positional = first_ties_pruned(groups[0], 2)[groups[0] == 0.5].float() * 60 * 20
    seeded_rule_and_positional_rule(nm_counts[[0, 2, 3]], nm_positional)
    row_positional = first_ties_pruned(rows[0], 2)[rows[0] == 0.5].float() * 60 * 10
    seeded_rule_and_positional_rule(row_counts[[0, 1, 2, 3, 5, 6, 7]], row_positional)


def test_block_and_lm_layer_ties_are_uniform_over_seeds() -> None:
    # block:1x2 over one row (sums exact in binary): 1, 1, 0.25, 1, 1; keeping 6 of 10 entries
    # prunes the 0.25 block and one of the four tied blocks
    row = torch.tensor([[0.5, 0.5, 0.75, 0.25, 0.125, 0.125, 0.625, 0.375, 0.875, 0.125]])
    sums = row.reshape(5, 2).sum(1)
    tied_blocks = sums == 1.0
    # the language model's layer scope: 0.1 three times and 0.5 twice; pruning 4 takes the
    # three 0.1 and one of the two 0.5
    layer_row = torch.tensor([[0.5, 0.5, 0.1, 0.1, 0.1, 0.9, 0.7, 0.8, 0.6, 0.9]])
    block_counts, layer_counts = torch.zeros(4), torch.zeros(2)
    for seed in SEEDS:
        mask = select_structured({"w": row}, 6, parse_structure("block:1x2"), seed=seed)["w"]
        assert int(mask.sum()) == 6
        block_counts += (~mask.reshape(5, 2)[:, 0])[tied_blocks].float()
        keep = keep_from_scores(layer_row, LayerTarget(sparsity=0.4, scope="layer"), name="w", seed=seed)
        assert int((~keep).sum()) == 4
        layer_counts += (~keep[0, :2]).float()
    block_positional = first_ties_pruned(sums, 2)[tied_blocks].float() * len(SEEDS)
    seeded_rule_and_positional_rule(block_counts, block_positional)
    layer_positional = first_ties_pruned(layer_row[0], 4)[:2].float() * len(SEEDS)
    seeded_rule_and_positional_rule(layer_counts, layer_positional)


def test_channel_ties_are_uniform_over_seeds() -> None:
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    graph = channel_graph(model, (3,))
    scores = [torch.tensor([0.5, 0.5, 0.1, 0.5, 0.9, 0.5])]  # prune 2: channel 2 and one tied
    counts = torch.zeros(4)
    for seed in SEEDS:
        selection = select_channels(graph, model, scores, ChannelTarget("channel_fraction", 2 / 6), seed=seed)
        pruned = sorted(c for channels in selection.pruned.values() for c in channels)
        assert len(pruned) == 2 and 2 in pruned
        counts[[0, 1, 3, 5].index(next(c for c in pruned if c != 2))] += 1
    positional = torch.tensor([len(SEEDS), 0.0, 0.0, 0.0])  # ties to the lower index, as before
    seeded_rule_and_positional_rule(counts, positional)


# ---------------------------------------------------------------------------------------------
# The language model's path is the classifier's


@pytest.mark.parametrize("scope", ["row", "layer", "global", "2:4"])
def test_language_model_masks_are_the_classifier_selection_of_the_same_scores(scope: str) -> None:
    """Magnitude on a tiny Llama whose weights take a few levels (many ties): the masks equal
    those the classifier path's functions give for the same |W| scores and seed."""
    pytest.importorskip("transformers")
    from lm_tiny import tiny_llama

    for seed in (0, 1):
        model = tiny_llama(seed=5)
        with torch.no_grad():
            for weight in lm_prunable(model).values():
                weight.copy_((weight * 50).round() / 50)  # a handful of levels
        scores = {name: w.detach().abs().clone() for name, w in lm_prunable(model).items()}
        nm = scope == "2:4"
        outcome = prune_causal_lm(model, torch.zeros(0, dtype=torch.long), "magnitude", sparsity=None if nm else 0.5,
                                  structure="2:4" if nm else "unstructured", scope=None if nm else scope, seed=seed)
        if scope == "row":
            expected = select_rows(scores, 0.5, seed=seed)
        elif scope == "global":
            total = sum(s.numel() for s in scores.values())
            expected = select_structured(scores, total - round(0.5 * total), parse_structure("unstructured"),
                                         "global", seed=seed)
        elif scope == "layer":  # the classifier path's per-tensor counts (as prune_model's keep mapping)
            expected = Mask({n: select_structured({n: s}, s.numel() // 2, parse_structure("unstructured"),
                                                  "layer", seed=seed)[n] for n, s in scores.items()})
        else:
            expected = select_structured(scores, 0, parse_structure("2:4"), seed=seed)
        assert all(torch.equal(outcome.mask[n], expected[n]) for n in scores), scope
        boundary_ties = sum(int((s == s.reshape(-1).sort().values[s.numel() // 2]).sum()) for s in scores.values())
        assert boundary_ties > len(scores)  # the case has ties to draw


def test_per_row_selection_is_exact_and_ranks_untied_scores_as_a_sort() -> None:
    """The row/N:M selection: each row loses max(count, its -inf entries), strictly lower
    scores always and strictly higher never; untied scores give a sort's mask."""
    from prunebench.pruning.selection import prune_lowest_per_row, tie_generator

    scores = tied((40, 24), 3, levels=5)
    scores[torch.rand(40, 24, generator=torch.Generator().manual_seed(4)) < 0.15] = -torch.inf
    scores[0, :20] = -torch.inf  # a row where the previous mask pruned more than the count
    for count in (0, 1, 7, 12, 24):
        pruned = prune_lowest_per_row(scores, count, tie_generator(count))
        wanted = torch.isneginf(scores).sum(1).clamp(min=count)
        assert torch.equal(pruned.sum(1), wanted)
        for row, flags in zip(scores, pruned):
            if bool(flags.any()) and not bool(flags.all()):
                assert float(row[flags].max()) <= float(row[~flags].min())
    untied = torch.rand(40, 24, generator=torch.Generator().manual_seed(5))
    by_sort = torch.zeros_like(untied, dtype=torch.bool).scatter_(1, untied.argsort(dim=1)[:, :9], True)
    assert torch.equal(prune_lowest_per_row(untied, 9, tie_generator(0)), by_sort)
