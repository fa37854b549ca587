"""What a run aims at: one type for the spec, result.json, the database, ``prunebench results``
and the report, so a target cannot mean one thing in one place and another elsewhere.

A ``prune`` section sets exactly one target, found in this order: an N:M structure fixes it
(``nm``, the pattern); else a language model's ``sparsity``; else a channel run's ``speedup`` or
``channel_fraction``; else an iterative schedule's ``rounds``; else ``compression`` (left out: 4).

Selection takes its own, narrower instructions derived from it (a channel selection's
compression, speedup or fraction; one layer's sparsity or N:M), which are not run targets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DEFAULT_COMPRESSION = 4.0  # prune.compression when no target is given
DEFAULT_SPARSITY = 0.5  # language models: prune.sparsity when no target is given

TargetKind = Literal["compression", "speedup", "channel_fraction", "rounds", "nm", "sparsity"]
# The prune.* keys of a classifier that set a target by their own value (one at most).
CLASSIFIER_TARGET_KEYS = ("compression", "speedup", "channel_fraction")
SPEC_KEYS: dict[str, str] = {
    "compression": "prune.compression", "speedup": "prune.speedup", "channel_fraction": "prune.channel_fraction",
    "rounds": "prune.iterative.rounds", "nm": "prune.structure", "sparsity": "prune.sparsity",
}
_NM = re.compile(r"\d+:\d+")  # prune.structure 'N:M'


class Target(BaseModel):
    """What the run was asked to reach. ``value`` is a ratio or fraction (compression, speedup,
    channel_fraction, sparsity), a round count (rounds) or an 'N:M' pattern (nm); ``kind`` says which."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TargetKind
    value: float | int | str

    @classmethod
    def of(
        cls, *, structure: str, schedule: str | None, compression: float | None, speedup: float | None,
        channel_fraction: float | None, rounds: int | None, sparsity: float | None,
    ) -> Target:
        """The one rule (see the module docstring) from a prune section's values."""
        if _NM.fullmatch(structure):
            return cls(kind="nm", value=structure)
        if sparsity is not None:  # a language model's target (resolved when the spec is built)
            return cls(kind="sparsity", value=float(sparsity))
        if speedup is not None:
            return cls(kind="speedup", value=float(speedup))
        if channel_fraction is not None:
            return cls(kind="channel_fraction", value=float(channel_fraction))
        if schedule == "iterative" and rounds is not None:
            return cls(kind="rounds", value=int(rounds))
        return cls(kind="compression", value=float(compression if compression is not None else DEFAULT_COMPRESSION))

    @classmethod
    def from_prune(cls, prune: Mapping[str, Any]) -> Target:
        """The target a recorded ``prune`` section sets (result.json's or a database row's spec,
        older ones included: a key they lack is taken as unset)."""
        return cls.of(
            structure=str(prune.get("structure", "unstructured")), schedule=prune.get("schedule"),
            compression=prune.get("compression"), speedup=prune.get("speedup"),
            channel_fraction=prune.get("channel_fraction"), rounds=(prune.get("iterative") or {}).get("rounds"),
            sparsity=prune.get("sparsity"),
        )

    def label(self) -> str:
        """'8x', 'speedup 2x', 'channels 0.5', '3 rounds', '2:4', '50%'."""
        if self.kind == "compression":
            return f"{self.value:g}x"
        if self.kind == "speedup":
            return f"speedup {self.value:g}x"
        if self.kind == "channel_fraction":
            return f"channels {self.value:g}"
        if self.kind == "rounds":
            return f"{self.value} rounds"
        if self.kind == "sparsity":
            return f"{float(self.value) * 100:g}%"
        return str(self.value)

    def spec_key(self) -> str:
        """The dotted spec key that holds the value (the rest of the spec is the curve)."""
        return SPEC_KEYS[self.kind]
