"""Width strategies: scores of whole units of a decoder block (MLP channels and key/value groups,
:mod:`prunebench.pruning.structures.lm_width`), for structured pruning of language models.

Each is a registered method (:class:`WidthMethod`) with one form, for language models under the
width structures; it scores one block at a time from that block's weights and what was measured
on the calibration tokens (:class:`BlockStatistics`). Low scores are pruned. Notation: ``W`` a
weight ``(out, in)``, ``X`` the ``(tokens, in)`` inputs of a Linear over the calibration tokens.
The "output projections" are ``o_proj`` (for key/value groups: the columns of the group's query
heads) and ``down_proj`` (for channels: the channel's column).

- ``magnitude_sp``: the squared L2 norm of every weight of the unit (gate and up rows with the
  down column; q, k, v rows with the o columns), the ranking of LLM-Pruner's ``l2`` baseline
  (Ma et al. 2023, ``MagnitudeImportance(p=2)``, group reduction ``sum``). Data-free.
- ``wanda_sp``: Wanda's score ``|W_ij| * ||X_j||_2`` on the output projection, summed over the
  unit's columns (An et al. 2024, FLAP's Wanda-sp baseline; its code averages over the rows,
  which ranks the same). Statistics of each block are taken on the outputs of the blocks before
  it as already pruned (sequential, as in that code).
- ``flap``: An et al., "Fluctuation-based Adaptive Structured Pruning for Large Language Models"
  (AAAI 2024), metric WIFV: the sample variance of input channel ``j`` of the output projection
  over the calibration tokens times the squared norm of its weight column,
  ``var(X_j) * ||W_:,j||^2``; a channel's score is that, a key/value group's is the sum of its
  columns' squared WIFV (the reference code squares the attention metric before summing). All
  statistics on the dense model (the reference computes them before any block is pruned). Bias
  compensation: the removed channels' mean contribution, ``W[:, removed] @ mean(X)[removed]``,
  is added to the output projection's bias. Only the paper's per-layer uniform allocation
  (``UL-UM``) is here; its standardized global allocation (``AL-AM``, the paper's default) is not.
- ``llm_pruner``: Ma, Fang & Wang, "LLM-Pruner: On the Structural Pruning of Large Language
  Models" (NeurIPS 2023): the first-order Taylor term per weight, ``|w * dL/dw|``
  (``--taylor param_first``, its published Llama recipe; the script's argparse default is
  ``param_mix``), summed over every weight of the unit (``--grouping_strategy sum``); ``L`` the
  next-token loss of the dense model on the calibration sequences (the paper: 10 BookCorpus
  samples of 64 tokens), one backward pass.
- ``random_sp``: uniform unit scores from the run's generator: the control.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch

from prunebench.pruning.scores.base import (
    CLASSIFIER, LANGUAGE_MODEL, Form, Method, ModelKind, NoOptions, register_method,
)
from prunebench.pruning.structures import structures_scoring
from prunebench.pruning.width.layout import BlockLayout, group_of_rows

WidthNeeds = Literal["nothing", "norms", "fluctuation", "gradients"]


@dataclasses.dataclass(frozen=True)
class InputStatistics:
    """Of one Linear's input over the calibration tokens: ``tokens``, per input feature the sum
    of squares ``sq_norms`` (``||X_j||^2``), the ``mean`` and the sample ``variance`` (n - 1)."""

    tokens: int
    sq_norms: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor


@dataclasses.dataclass(frozen=True)
class BlockStatistics:
    """What a width strategy may read of one block besides its weights: input statistics of the
    output projections (``o_proj``, ``down_proj``) and the gradients of the block's weights
    (by short name), each None where the strategy did not ask."""

    inputs: dict[str, InputStatistics] | None = None
    gradients: dict[str, torch.Tensor] | None = None


UnitScores = tuple[torch.Tensor, torch.Tensor]  # (scores of the K key/value groups, of the MLP channels)
WidthScoreFn = Callable[[BlockLayout, BlockStatistics, torch.Generator], UnitScores]


@dataclasses.dataclass(frozen=True, kw_only=True)
class WidthMethod(Method):
    """A method whose only form scores whole units of a language model's decoder blocks.

    ``needs``: what the driver measures first (:data:`WidthNeeds`); ``sequential``: whether each
    block's statistics are taken after the blocks before it were pruned (else on the dense
    model); ``compensates``: whether it writes a bias into the output projections after the
    selection (FLAP)."""

    score: WidthScoreFn
    width_needs: WidthNeeds = "nothing"
    sequential: bool = False
    compensates: bool = False
    comparable: bool = False  # units are compared within a block: the allocation is per layer
    # "layer": units are compared within their block. The random control also takes "global" (the
    # sweeps' random control asks for it): its scores are i.i.d., comparable across blocks, and the
    # count per block is the same either way.
    scopes: tuple[str, ...] = ("layer",)
    unit: Literal["width"] | None = dataclasses.field(default="width", init=False)  # type: ignore[assignment]

    def form(self, kind: ModelKind) -> Form | None:
        if kind == CLASSIFIER:
            return None
        return Form(LANGUAGE_MODEL, "width", self.width_needs, training_phase=False, reconstructs=self.compensates,
                    scopes=self.scopes, structures=structures_scoring("width"))


def _sum_over_groups(block: BlockLayout, short: str, per_row_or_column: torch.Tensor) -> torch.Tensor:
    """Per-row (q, k, v) or per-column (o) sums added up per key/value group."""
    groups = group_of_rows(block, short)
    return torch.zeros(block.kv_heads, dtype=torch.float64).index_add_(0, groups, per_row_or_column.to(torch.float64))


def _weight(block: BlockLayout, short: str) -> torch.Tensor:
    return block.linears[short].weight.detach().to(torch.float64)


def _unit_sums(block: BlockLayout, per_weight: Callable[[str], torch.Tensor]) -> UnitScores:
    """Sum a per-weight score over every weight of each unit (the whole structure)."""
    groups = sum(_sum_over_groups(block, s, per_weight(s).sum(dim=1)) for s in ("q_proj", "k_proj", "v_proj"))
    groups = groups + _sum_over_groups(block, "o_proj", per_weight("o_proj").sum(dim=0))
    channels = per_weight("gate_proj").sum(dim=1) + per_weight("up_proj").sum(dim=1) + per_weight("down_proj").sum(dim=0)
    return groups, channels


def magnitude_sp(block: BlockLayout, stats: BlockStatistics, generator: torch.Generator) -> UnitScores:
    return _unit_sums(block, lambda short: _weight(block, short).square())


def wanda_sp(block: BlockLayout, stats: BlockStatistics, generator: torch.Generator) -> UnitScores:
    assert stats.inputs is not None

    def column_scores(short: str) -> torch.Tensor:
        norms = stats.inputs[short].sq_norms.to(torch.float64).sqrt()  # type: ignore[index]
        return (_weight(block, short).abs() * norms.unsqueeze(0)).sum(dim=0)

    return _sum_over_groups(block, "o_proj", column_scores("o_proj")), column_scores("down_proj")


def flap(block: BlockLayout, stats: BlockStatistics, generator: torch.Generator) -> UnitScores:
    assert stats.inputs is not None

    def wifv(short: str) -> torch.Tensor:  # var(X_j) * ||W_:,j||^2
        variance = stats.inputs[short].variance.to(torch.float64)  # type: ignore[index]
        return variance * _weight(block, short).square().sum(dim=0)

    return _sum_over_groups(block, "o_proj", wifv("o_proj").square()), wifv("down_proj")


def llm_pruner(block: BlockLayout, stats: BlockStatistics, generator: torch.Generator) -> UnitScores:
    assert stats.gradients is not None
    grads = stats.gradients
    return _unit_sums(block, lambda short: (_weight(block, short) * grads[short].to(torch.float64)).abs())


def random_sp(block: BlockLayout, stats: BlockStatistics, generator: torch.Generator) -> UnitScores:
    groups = torch.rand(block.kv_heads, generator=generator, dtype=torch.float64)
    return groups, torch.rand(block.channels, generator=generator, dtype=torch.float64)


MAGNITUDE_SP = register_method(WidthMethod(
    name="magnitude_sp", score=magnitude_sp, options_type=NoOptions, width_needs="nothing",
    summary="squared L2 norm of all of a unit's weights (LLM-Pruner's l2 baseline, group sum)",
))
WANDA_SP = register_method(WidthMethod(
    name="wanda_sp", score=wanda_sp, width_needs="norms", sequential=True,
    summary="Wanda-sp (An et al. 2024): |W_ij| x ||X_j||_2 of the output projection, summed over a unit's columns",
))
FLAP = register_method(WidthMethod(
    name="flap", score=flap, width_needs="fluctuation", compensates=True,
    summary="FLAP (An et al. 2024): var(X_j) x ||W_:,j||^2 of the output projection, with bias compensation",
))
LLM_PRUNER = register_method(WidthMethod(
    name="llm_pruner", score=llm_pruner, width_needs="gradients",
    summary="LLM-Pruner (Ma et al. 2023): first-order Taylor |w x dL/dw| summed over a unit's weights",
))
RANDOM_SP = register_method(WidthMethod(
    name="random_sp", score=random_sp, width_needs="nothing", scopes=("layer", "global"), comparable=True,
    summary="uniform unit scores from the run's generator: the width structures' random control",
))
