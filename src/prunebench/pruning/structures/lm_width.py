"""Width structures of decoder-only transformers (Llama layout: SmolLM2, Llama 2/3, Mistral, Qwen2):
units removed whole, so that the pruned model can be rebuilt as a smaller dense one
(:mod:`prunebench.pruning.width`).

- ``mlp_channels``: one intermediate channel of a block's MLP is the row of ``gate_proj``, the
  same row of ``up_proj`` and the same column of ``down_proj`` (``3 x hidden`` weights).
- ``attention_heads``: one key/value group of a block's attention: a key/value head (its rows of
  ``k_proj`` and ``v_proj``) with the query heads that share it under grouped-query attention
  (their rows of ``q_proj`` and columns of ``o_proj``). Removing whole groups keeps every group's
  query heads together, so the kept model is the same GQA layout with fewer key/value heads.
- ``width``: both, for a target counted in the block's Linear parameters (attention groups
  rounded down first, MLP channels make up the rest).

``prune.sparsity`` is the fraction of each block's parameters of the structure removed, the same
in every block (uniform allocation), so the widths stay uniform across blocks and transformers'
config can describe the compact model. Width strategies score the units
(:mod:`prunebench.pruning.scores.width`); the random control is ``random_sp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from prunebench.pruning.structures.base import ScoreUnit, WholeUnitStructure, register

WIDTH_UNIT: ScoreUnit = "width"  # what width strategies score: whole units of a block


class WidthStructure(WholeUnitStructure):
    """A structure of whole units of decoder blocks; ``parts`` says which (``mlp``, ``heads``)."""

    parts: ClassVar[tuple[str, ...]] = ()
    scores: ClassVar[ScoreUnit] = WIDTH_UNIT
    random_control: ClassVar[str] = "random_sp"
    exclude: ClassVar[str] = "does not apply: every decoder block is pruned to the same width"


@register
@dataclass(frozen=True)
class MLPChannels(WidthStructure):
    kind: ClassVar[str] = "mlp_channels"
    spelling: ClassVar[str] = "'mlp_channels'"
    example: ClassVar[str] = "mlp_channels"
    parts: ClassVar[tuple[str, ...]] = ("mlp",)


@register
@dataclass(frozen=True)
class AttentionHeads(WidthStructure):
    kind: ClassVar[str] = "attention_heads"
    spelling: ClassVar[str] = "'attention_heads'"
    example: ClassVar[str] = "attention_heads"
    parts: ClassVar[tuple[str, ...]] = ("heads",)


@register
@dataclass(frozen=True)
class Width(WidthStructure):
    kind: ClassVar[str] = "width"
    spelling: ClassVar[str] = "'width'"
    example: ClassVar[str] = "width"
    parts: ClassVar[tuple[str, ...]] = ("heads", "mlp")


def width_structures() -> tuple[str, ...]:
    """The kinds of the width structures."""
    return (MLPChannels.kind, AttentionHeads.kind, Width.kind)
