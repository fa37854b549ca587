"""The structure contract and its registry.

A structure says how scores become a mask: which entries may go alone and which only together.
Each one is a class registered by its ``kind`` (:data:`STRUCTURES`), whose instances are what
``prune.structure`` parses to (``"2:4"`` -> ``NM(n=2, m=4)``). A structure owns everything that
depends on it: parsing and validating its text, the ``prune.*`` targets it accepts, the schedules
it can follow, its random control, how ``prune.prunable.exclude`` applies, and (for the weight
structures, :class:`WeightStructure`) its keep count, its selection and the check of its masks.
The rest of prunebench asks the structure object instead of switching on a name, so a new
structure is one module plus one registration line (:mod:`prunebench.pruning.structures`).

Every selection goes through :mod:`prunebench.pruning.selection`, which breaks ties at the keep
boundary by the run's seed, never by position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import torch

from prunebench.errors import ConfigError, either
from prunebench.pruning.mask import Mask
from prunebench.pruning.selection import Scope
from prunebench.registry import Registry
from prunebench.target import CLASSIFIER_TARGET_KEYS

TARGET_KINDS = CLASSIFIER_TARGET_KEYS  # the prune.* keys that set a target (prunebench.target)
Shapes = Mapping[str, torch.Size]
ScoreUnit = Literal["weights", "channels", "width", "depth"]


class PruneTargets(Protocol):
    """What a structure reads of the ``prune:`` settings to check them."""

    @property
    def structure(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def compression(self) -> float | None: ...
    @property
    def speedup(self) -> float | None: ...
    @property
    def channel_fraction(self) -> float | None: ...


class Structure(ABC):
    """One registered structure. A subclass declares the class attributes below and parses its
    own text (:meth:`parse`); an instance is one parsed ``prune.structure`` value."""

    kind: ClassVar[str]  # the registry key, and what strategies list among the structures they score
    spelling: ClassVar[str]  # how prune.structure writes it, for the error that lists every form
    example: ClassVar[str]  # one valid prune.structure text (docs, contract tests)
    scores: ClassVar[ScoreUnit] = "weights"  # what it selects from: weight scores or channel scores
    target_kinds: ClassVar[tuple[str, ...]] = ("compression",)  # the prune.* targets it accepts
    # The strategy that prunes at random under it: the baseline every method of it must beat.
    random_control: ClassVar[str] = "random"
    exclude: ClassVar[str] = "the matched parameters stay dense"  # what prune.prunable.exclude keeps
    refines_masks: ClassVar[bool] = True  # whether it can select inside an earlier mask (schedules)
    language_model: ClassVar[bool] = False  # whether the language-model driver prunes under it
    any_mask: ClassVar[bool] = False  # whether every mask has the structure (unstructured)

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> Structure | None:
        """This structure for ``text``; None when ``text`` is not written its way; ConfigError
        when it is but a value is out of range (``"3:2"``)."""

    @property
    def text(self) -> str:
        """How ``prune.structure`` spells it."""
        return self.kind

    @property
    def label(self) -> str:
        """How an error message names it."""
        return repr(self.text)

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity the structure itself fixes (N:M: 1 - N/M), or None where a target sets it."""
        return None

    def layer_pattern(self) -> tuple[int, int] | None:
        """``(n, m)`` where a language model's layer target keeps N of every M inputs; None
        where the layer target is a sparsity (:class:`prunebench.pruning.scores.LayerTarget`)."""
        return None

    def accepts_schedule(self, schedule: Any) -> bool:
        """Whether it can follow ``schedule`` (a schedule's rules object)."""
        return self.refines_masks or not schedule.refines_masks

    def refuse_target(self, kind: str) -> str:
        """The message for a ``prune.<kind>`` target it does not accept."""
        fitting = [s.kind for s in registered() if kind in s.target_kinds]
        return f"prune.{kind} is not a target of prune.structure {self.label}: it needs prune.structure {either(fitting)}"

    def validate(self, prune: PruneTargets, schedules: Mapping[str, Any]) -> None:
        """Raise ValueError unless ``prune``'s target and schedule suit this structure.
        ``schedules`` maps every registered schedule name to its rules object."""
        given = [kind for kind in TARGET_KINDS if getattr(prune, kind) is not None]
        if len(given) > 1:
            raise ValueError("prune.compression, prune.speedup and prune.channel_fraction each set the target: give one")
        for kind in given:
            if kind not in self.target_kinds:
                raise ValueError(self.refuse_target(kind))
        if not self.accepts_schedule(schedules[prune.schedule]):
            fitting = [name for name, rules in schedules.items() if self.accepts_schedule(rules)]
            raise ValueError(f"prune.structure {self.label} needs prune.schedule {either(fitting)}, not {prune.schedule!r}")


class WholeUnitStructure(Structure):
    """A language model's structure of whole units that are removed, not masked in place: its
    own strategies choose them (``scores``), one-shot only (the removed units are gone, there is
    nothing to refine), written as its ``kind`` alone."""

    refines_masks: ClassVar[bool] = False
    language_model: ClassVar[bool] = True

    @classmethod
    def parse(cls, text: str) -> Structure | None:
        return cls() if text == cls.kind else None

    def accepts_schedule(self, schedule: Any) -> bool:
        return bool(schedule.name == "one-shot")


class WeightStructure(Structure):
    """A structure that selects from weight scores (any weight strategy's), here, by itself.

    ``keep`` is always counted in prunable entries; a structure that keeps entries only in
    groups (blocks, rows) keeps the number of groups :meth:`units_to_keep` says, exactly."""

    def check_shapes(self, shapes: Shapes) -> None:
        """Raise ConfigError unless every parameter can carry the structure exactly."""

    def keep_count(self, shapes: Shapes, for_target: Callable[[], int]) -> int:
        """Entries to keep: ``for_target()`` (the count the run's target implies), unless the
        structure fixes the count itself."""
        return for_target()

    @abstractmethod
    def select(
        self, scores: Mapping[str, torch.Tensor], keep: int, scope: Scope = "global",
        previous: Mask | None = None, *, seed: int = 0,
    ) -> Mask:
        """Keep what ``keep`` entries imply in this structure, ranked by ``scores`` (low pruned),
        inside ``previous`` (masks only shrink); ties at the boundary drawn by ``seed``."""

    def violations(self, mask: Mask) -> list[str]:
        """Every place where ``mask`` breaks the structure (empty when it is exact)."""
        return []

    def kept_units(self, mask: Mask) -> int:
        """What ``mask`` keeps, in the units the structure selects (entries, blocks, rows)."""
        return mask.kept

    def units_to_keep(self, shapes: Shapes, keep: int) -> int:
        """How many units a selection for ``keep`` entries keeps (before an earlier mask)."""
        return keep


STRUCTURES: Registry[type[Structure]] = Registry("structure")
_ORDER: list[str] = []  # the kinds in registration order: how lists of structures read, default first
S = TypeVar("S", bound=type[Structure])


def register(cls: S) -> S:
    """Class decorator: register a structure under its ``kind``."""
    STRUCTURES.add(cls.kind, cls)
    _ORDER.append(cls.kind)
    return cls


def registered() -> list[type[Structure]]:
    """Every registered structure class, in registration order."""
    return [STRUCTURES.get(kind) for kind in _ORDER]


def structures_scoring(unit: str | None) -> tuple[str, ...]:
    """The kinds of the structures that select from ``unit`` scores (``weights``, ``channels``)."""
    return tuple(cls.kind for cls in registered() if cls.scores == unit)


def language_model_structures() -> tuple[str, ...]:
    """The kinds the language-model driver prunes under."""
    return tuple(cls.kind for cls in registered() if cls.language_model)


def spellings(kinds: Sequence[str]) -> str:
    """``'unstructured' or 'N:M' (e.g. '2:4')``: how the structures ``kinds`` are written, for a message."""
    forms = [STRUCTURES.get(kind).spelling for kind in kinds]
    return " or ".join([", ".join(forms[:-1]), forms[-1]] if len(forms) > 1 else forms)


def parse_structure(text: str) -> Structure:
    """The structure ``prune.structure`` ``text`` names; ConfigError if no registered one does."""
    for cls in registered():
        parsed = cls.parse(text)
        if parsed is not None:
            return parsed
    raise ConfigError(f"prune.structure: must be {spellings([cls.kind for cls in registered()])}, got {text!r}")
