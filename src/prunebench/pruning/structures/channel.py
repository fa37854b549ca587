"""``channel``: whole channels (filters), removed with everything coupled to them. Channel
strategies score them and :mod:`prunebench.pruning.channels` selects them on the model's channel
graph, to a compression, a speedup or a channel fraction, in one shot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from prunebench.pruning.structures.base import TARGET_KINDS, ScoreUnit, Structure, register


@register
@dataclass(frozen=True)
class Channel(Structure):
    kind: ClassVar[str] = "channel"
    spelling: ClassVar[str] = "'channel'"
    example: ClassVar[str] = "channel"
    scores: ClassVar[ScoreUnit] = "channels"
    target_kinds: ClassVar[tuple[str, ...]] = TARGET_KINDS
    random_control: ClassVar[str] = "random_channel"
    exclude: ClassVar[str] = (
        "every output channel of a layer with a matched parameter is kept (its inputs may still "
        "shrink with the layer before it)"
    )

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        return cls() if text == cls.kind else None

    def accepts_schedule(self, schedule: Any) -> bool:
        """One-shot only: a channel selection is compacted away, there is nothing to refine."""
        return bool(schedule.name == "one-shot")
