"""The depth structure of decoder-only transformers: whole decoder blocks removed.

One unit is a decoder block: every weight of its Linear layers (attention and MLP) is pruned
together. A Llama-layout block adds its attention's and its MLP's outputs to the residual stream,
and each output passes through a projection (``o_proj``, ``down_proj``, no bias): with those
weights zero the block adds nothing and passes its input on unchanged, so the masked model
computes what the model with the block deleted computes (:func:`prunebench.pruning.depth.
remove_blocks` then deletes it). ``prune.sparsity`` is the fraction of the decoder blocks'
parameters removed (rounded to whole blocks, :func:`prunebench.pruning.depth.blocks_for_fraction`).
Depth strategies choose the blocks (:mod:`prunebench.pruning.scores.depth`); the random control is
``random_block``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from prunebench.pruning.structures.base import ScoreUnit, WholeUnitStructure, register

DEPTH_UNIT: ScoreUnit = "depth"  # what depth strategies choose: whole decoder blocks


@register
@dataclass(frozen=True)
class Depth(WholeUnitStructure):
    kind: ClassVar[str] = "depth"
    spelling: ClassVar[str] = "'depth'"
    example: ClassVar[str] = "depth"
    scores: ClassVar[ScoreUnit] = DEPTH_UNIT
    random_control: ClassVar[str] = "random_block"
    exclude: ClassVar[str] = "does not apply: a decoder block goes whole"
