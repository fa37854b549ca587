"""The retraining modes the spec accepts (``retrain.mode``), and the rules each owns.

This is what ``retrain.mode: weight-rewind`` means to the schema: where the retrained weights
start, which recipe trains them, which schedules the mode applies to and which ``retrain.*``
settings it reads. How a mode retrains is in :mod:`prunebench.experiment.retrain`, whose
classes extend these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from prunebench.registry import Registry

Start = Literal["pruned", "rewound", "fresh"]
ALL_SCHEDULES = ("one-shot", "iterative", "gradual", "at-init")
AFTER_TRAINING = ("one-shot", "iterative")  # schedules that prune a trained network, then retrain it


class EpochsSettings(Protocol):
    @property
    def epochs(self) -> int: ...


class RewindSettings(Protocol):
    @property
    def rewind_epoch(self) -> int: ...


class SpecSettings(Protocol):
    """What the rules read of a whole spec (:class:`prunebench.spec.ExperimentSpec` is one)."""

    @property
    def train(self) -> EpochsSettings: ...

    @property
    def retrain(self) -> RewindSettings: ...


@dataclass(frozen=True)
class RetrainRules:
    """A retraining mode as the schema knows it.

    ``start``: ``pruned`` (the weights pruning left), ``rewound`` (the survivors reset to dense
    training's step ``retrain.rewind_step``) or ``fresh`` (a new random initialization).
    ``recipe_key``: the recipe that trains it. ``rounds`` is the mode the intermediate rounds
    of an iterative schedule use (unset: this one), ``round_settings`` the ``retrain.*`` keys
    those rounds read beyond ``settings``.
    """

    name: str
    description: str
    start: Start
    recipe_key: Literal["finetune", "train"]
    schedules: tuple[str, ...] = AFTER_TRAINING
    settings: tuple[str, ...] = ()
    rounds: str | None = None
    round_settings: tuple[str, ...] = ()

    def validate(self, spec: SpecSettings) -> None:
        """Raise ValueError for a value this mode cannot use (the keys are checked by the schema)."""


class LrRewindRules(RetrainRules):
    def validate(self, spec: SpecSettings) -> None:
        if spec.retrain.rewind_epoch >= spec.train.epochs:
            raise ValueError(f"retrain.rewind_epoch must be below train.epochs ({spec.train.epochs})")


RETRAIN_MODES: Registry[RetrainRules] = Registry("retraining mode")
for _mode in (
    RetrainRules(
        "finetune", "continue from the pruned weights with the finetune recipe", "pruned", "finetune",
        schedules=ALL_SCHEDULES,
    ),
    LrRewindRules(
        "lr-rewind", "continue from the pruned weights with the train recipe from epoch rewind_epoch (Renda et al. 2020)",
        "pruned", "train", settings=("rewind_epoch",),
    ),
    RetrainRules(
        "weight-rewind", "reset the survivors to dense step rewind_step, train recipe from there (Frankle et al. 2020)",
        "rewound", "train", settings=("rewind_step",),
    ),
    RetrainRules(
        "reinit", "the same mask on a fresh random initialization, the train recipe", "fresh", "train",
        schedules=(*AFTER_TRAINING, "at-init"), rounds="weight-rewind", round_settings=("rewind_step",),
    ),
    RetrainRules(
        "scratch", "the same mask on a fresh random initialization, train recipe for scratch_epochs", "fresh", "train",
        settings=("scratch_epochs",), rounds="weight-rewind", round_settings=("rewind_step",),
    ),
    RetrainRules(
        "scratch-e", "the pruned architecture from a fresh initialization, the dense epochs (Liu et al. 2019)",
        "fresh", "train", rounds="weight-rewind",
    ),
    RetrainRules(
        "scratch-b", "the pruned architecture from a fresh initialization, the dense compute (Liu et al. 2019)",
        "fresh", "train", rounds="weight-rewind",
    ),
):
    RETRAIN_MODES.add(_mode.name, _mode)
