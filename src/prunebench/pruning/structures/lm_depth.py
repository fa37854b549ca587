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
from typing import Any, ClassVar

from prunebench.pruning.structures.base import ScoreUnit, Structure, register

DEPTH_UNIT: ScoreUnit = "depth"  # what depth strategies choose: whole decoder blocks


@register
@dataclass(frozen=True)
class Depth(Structure):
    kind: ClassVar[str] = "depth"
    spelling: ClassVar[str] = "'depth'"
    example: ClassVar[str] = "depth"
    scores: ClassVar[ScoreUnit] = DEPTH_UNIT
    random_control: ClassVar[str] = "random_block"
    exclude: ClassVar[str] = "does not apply: a decoder block goes whole"
    refines_masks: ClassVar[bool] = False
    language_model: ClassVar[bool] = True

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        return cls() if text == cls.kind else None

    def accepts_schedule(self, schedule: Any) -> bool:
        """One-shot only: the removed blocks are gone, there is nothing to refine."""
        return bool(schedule.name == "one-shot")
