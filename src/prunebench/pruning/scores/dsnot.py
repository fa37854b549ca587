"""DSnoT, Dynamic Sparse No Training (Zhang, Zhao, Lin, Sun, Yao, Han, Tanner, Liu & Ji 2024,
"Dynamic Sparse No Training: Training-Free Fine-tuning for Sparse LLMs", ICLR): a base method's
mask, then prune-and-grow swaps inside each output row that shrink the expected change of that
row's output, with no weight update.

The expected output change of row ``r`` is ``e_r = sum over pruned j of D_rj``, with
``D_rj = W_rj * S_j``, ``S_j`` the sum of input feature ``j`` over a calibration sequence's
tokens, averaged over the sequences (the reference's ``sum_metric_row``). While
``|e_r| > update_threshold``, for at most ``max_cycle_time`` cycles, row ``r`` regrows the pruned
weight that moves ``e_r`` most towards zero relative to its input's variance (the largest
``D_rj / Var(X_j) ** pow_of_var_regrowing`` of the sign of ``e_r``) and prunes a kept weight
whose ``D_rj`` has the other sign: unstructured, the one with the lowest Wanda score
``|W_rj| ||X_j||_2`` (for every base, as the reference does); N:M, the kept weight of the
regrown weight's group with the lowest base score, and only while ``e_r`` keeps its initial sign.
Each swap regrows one weight and prunes one in the same row (and N:M group), so the counts of
every row, layer and group are the base mask's, exactly. Weights pruned by an earlier mask are
never regrown; a weight is moved at most once.

Defaults from the reference code (zyxxmu/DSnoT, ``main.py`` and ``lib/prune.py``):
``max_cycle_time: 50``, ``update_threshold: 0.1``, ``pow_of_var_regrowing: 1``, the initial mask
selected per output row (``scope: row``), and ``skip_layer: mlp``: the Linears of the MLP keep
the base mask and only the attention projections are refined (the reference's default, which
its README's command keeps; ``no_skip`` refines every Linear). The reference's calibration
sequences are 2048 tokens long; ``S_j``, and so the threshold's effect, grows with the length.
Its initial methods are Wanda, magnitude and SparseGPT's saliency without SparseGPT's weight
update; here ``base`` is any registered method whose language-model form only scores
(magnitude, random, Wanda, RIA, a plugin's), selected by the same selection as that method
alone, ties drawn by the run's seed.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, Field

from prunebench.pruning.scores.base import STRATEGIES, LayerPruner, LayerStatistics, LayerTarget, Method, register_method


def refinable_bases() -> list[str]:
    """The registered methods DSnoT can start from: a language-model form that only scores,
    from nothing, the input norms or the moments DSnoT collects."""
    names = []
    for name in STRATEGIES.names():
        layer = STRATEGIES.get(name).layer
        if layer is not None and layer.score is not None and layer.update is None and layer.refine is None \
                and layer.statistics in ("none", "norms", "moments"):
            names.append(name)
    return names


def _check_base(name: str) -> str:
    if name not in refinable_bases():
        raise ValueError(f"{name!r} is not a method whose language-model mask dsnot can refine "
                         f"(one that only scores, without a weight update: {', '.join(refinable_bases())})")
    return name


@dataclasses.dataclass(frozen=True)
class DSnoTOptions:
    base: Annotated[str, AfterValidator(_check_base)] = "wanda"  # the reference's --initial_method
    max_cycle_time: Annotated[int, Field(ge=0)] = 50  # swaps per row, at most
    update_threshold: Annotated[float, Field(ge=0)] = 0.1  # a row stops once |e_r| is at most this
    pow_of_var_regrowing: Annotated[float, Field(ge=0)] = 1.0  # regrowing ranks D_rj / Var(X_j) ** this
    skip_layer: Literal["mlp", "self_attn", "no_skip"] = "mlp"  # Linears under this module keep the base mask


def base_scores(weight: torch.Tensor, stats: LayerStatistics, options: DSnoTOptions, generator: torch.Generator) -> torch.Tensor:
    """The base method's scores (its default options): the driver selects the initial mask from them."""
    layer = STRATEGIES.get(options.base).layer
    assert layer is not None and layer.score is not None
    return layer.score(weight, stats, STRATEGIES.get(options.base).parse_options(None), generator)


def _ranked(values: torch.Tensor, eligible: torch.Tensor, order: torch.Tensor, *, descending: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the columns of the eligible entries by ``values`` (ties in the random column
    ``order``), the ineligible ones after them, and how many are eligible."""
    fill = -torch.inf if descending else torch.inf
    shuffled = values.masked_fill(~eligible, fill)[:, order]
    ranks = torch.sort(shuffled, dim=1, descending=descending, stable=True).indices
    return order[ranks], eligible.sum(dim=1)


def _take(columns: torch.Tensor, cursor: torch.Tensor) -> torch.Tensor:
    return columns.gather(1, cursor.clamp(max=columns.shape[1] - 1).unsqueeze(1)).squeeze(1)


def dsnot_refine(
    weight: torch.Tensor, stats: LayerStatistics, scores: torch.Tensor, keep: torch.Tensor, target: LayerTarget,
    options: DSnoTOptions, *, name: str, generator: torch.Generator,
) -> torch.Tensor:
    """The base mask ``keep`` after DSnoT's swaps (a new tensor; see the module's docstring)."""
    if options.skip_layer in name.split(".") or options.max_cycle_time == 0:
        return keep
    if stats.sums is None or stats.variance is None or stats.sq_norms is None or not stats.sequences:
        raise ValueError("dsnot needs the input feature sums, variances and norms of each layer")
    device = keep.device
    w = weight.detach().to(torch.float64)
    drift = w * (stats.sums.to(device, torch.float64) / stats.sequences).unsqueeze(0)  # D_rj
    regrow_key = drift / stats.variance.to(device, torch.float64).pow(options.pow_of_var_regrowing).unsqueeze(0)
    order = torch.randperm(keep.shape[1], generator=generator).to(device)  # ties: drawn by the run's seed
    pruned0 = ~keep if target.pruned is None else ~keep & ~target.pruned.to(device)  # earlier masks stay pruned
    # Regrowing: the pruned weights whose D has the sign of e, the largest |D / Var^p| first.
    grow = (_ranked(regrow_key, pruned0 & (regrow_key > 0), order, descending=True),
            _ranked(regrow_key, pruned0 & (regrow_key < 0), order, descending=False))
    if target.m is not None:
        return _swap_nm(keep, drift, scores.to(device, torch.float64), grow, target.m, options)
    # Pruning: the kept weights whose D has the other sign, the lowest Wanda score first.
    wanda = w.abs() * stats.sq_norms.to(device, torch.float64).sqrt().unsqueeze(0)
    cut = (_ranked(wanda, keep & (drift < 0), order, descending=False),
           _ranked(wanda, keep & (drift > 0), order, descending=False))
    return _swap_rows(keep, drift, grow, cut, options)


Ranked = tuple[torch.Tensor, torch.Tensor]


def _swap_rows(keep: torch.Tensor, drift: torch.Tensor, grow: tuple[Ranked, Ranked], cut: tuple[Ranked, Ranked],
               options: DSnoTOptions) -> torch.Tensor:
    """Unstructured: each cycle, every active row regrows its next weight of the sign of e and
    prunes its next kept weight of the other sign."""
    keep = keep.clone()
    rows = torch.arange(keep.shape[0], device=keep.device)
    error = (drift * ~keep).sum(dim=1)
    cursors = torch.zeros(4, keep.shape[0], dtype=torch.long, device=keep.device)  # grow+, grow-, cut-, cut+
    active = torch.ones_like(error, dtype=torch.bool)
    (grow_pos, n_grow_pos), (grow_neg, n_grow_neg) = grow
    (cut_neg, n_cut_neg), (cut_pos, n_cut_pos) = cut
    for _ in range(options.max_cycle_time):
        positive = error > 0
        grow_at = torch.where(positive, cursors[0], cursors[1])
        cut_at = torch.where(positive, cursors[2], cursors[3])
        left = (grow_at < torch.where(positive, n_grow_pos, n_grow_neg)) & (cut_at < torch.where(positive, n_cut_neg, n_cut_pos))
        active &= (error.abs() > options.update_threshold) & left
        if not bool(active.any()):
            break
        grown = torch.where(positive, _take(grow_pos, cursors[0]), _take(grow_neg, cursors[1]))
        pruned = torch.where(positive, _take(cut_neg, cursors[2]), _take(cut_pos, cursors[3]))
        moved = rows[active]
        keep[moved, grown[active]] = True
        keep[moved, pruned[active]] = False
        error[active] += drift[moved, pruned[active]] - drift[moved, grown[active]]
        step = active.long()
        cursors[0] += step * positive
        cursors[1] += step * ~positive
        cursors[2] += step * positive
        cursors[3] += step * ~positive
    return keep


def _swap_nm(keep: torch.Tensor, drift: torch.Tensor, scores: torch.Tensor, grow: tuple[Ranked, Ranked], m: int,
             options: DSnoTOptions) -> torch.Tensor:
    """N:M: each cycle, every active row regrows its next weight of the sign of e and prunes the
    kept weight of that weight's group with the lowest base score, while e keeps its sign."""
    keep = keep.clone()
    original = keep.clone()  # a regrown weight is not pruned again, a pruned one not regrown
    rows = torch.arange(keep.shape[0], device=keep.device)
    error = (drift * ~keep).sum(dim=1)
    sign = torch.sign(error)
    cursors = torch.zeros(2, keep.shape[0], dtype=torch.long, device=keep.device)  # grow+, grow-
    active = torch.ones_like(error, dtype=torch.bool)
    (grow_pos, n_grow_pos), (grow_neg, n_grow_neg) = grow
    offsets = torch.arange(m, device=keep.device)
    for _ in range(options.max_cycle_time):
        positive = error > 0
        grow_at = torch.where(positive, cursors[0], cursors[1])
        left = grow_at < torch.where(positive, n_grow_pos, n_grow_neg)
        grown = torch.where(positive, _take(grow_pos, cursors[0]), _take(grow_neg, cursors[1]))
        group = (grown - grown % m).unsqueeze(1) + offsets  # (rows, m): the columns of its group
        candidates = original.gather(1, group) & keep.gather(1, group)
        lowest = scores.gather(1, group).masked_fill(~candidates, torch.inf).argmin(dim=1)
        pruned = group.gather(1, lowest.unsqueeze(1)).squeeze(1)
        after = error + drift[rows, pruned] - drift[rows, grown]
        active &= (error.abs() > options.update_threshold) & left & candidates.any(dim=1) & (torch.sign(after) == sign)
        if not bool(active.any()):
            break
        moved = rows[active]
        keep[moved, grown[active]] = True
        keep[moved, pruned[active]] = False
        error = torch.where(active, after, error)
        step = active.long()
        cursors[0] += step * positive
        cursors[1] += step * ~positive
    return keep


DSNOT = register_method(Method(
    name="dsnot",
    options_type=DSnoTOptions,
    layer=LayerPruner("DSnoT (Zhang et al. 2024): a base method's mask (wanda), then prune-and-grow swaps per row "
                      "towards zero expected output change, no weight update", "moments", ("row", "layer"),
                      score=base_scores, refine=dsnot_refine),
    comparable=False,  # the base's scores and the swaps use each layer's own calibration statistics
))
