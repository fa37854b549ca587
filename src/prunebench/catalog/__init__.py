"""The names a spec is validated against, found when a spec is validated.

The spec schema (:mod:`prunebench.config`) knows names, not implementations: it imports
nothing that loads data, builds a model or prunes. Schedules and retraining modes register
here, from :mod:`prunebench.experiment.schedules` and :mod:`prunebench.experiment.retrain`;
datasets, models, strategies and structures keep their registries beside their
implementations and are looked up through the functions below. ``import prunebench`` imports
all of them, so by the time a spec is validated every built-in name is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from prunebench.registry import Registry

if TYPE_CHECKING:
    from prunebench.config import ExperimentSpec, PruneSpec
    from prunebench.pruning.channels.scorers import ChannelStrategy
    from prunebench.pruning.scores.base import Method, StrategyView


class ScheduleRules(Protocol):
    """What the schema asks of a schedule (the object also runs it: experiment/schedules.py)."""

    name: str
    description: str
    section: str | None  # the prune.* section holding its settings, e.g. "iterative"
    refines_masks: bool  # whether a later step prunes further a mask an earlier step chose

    def validate(self, prune: PruneSpec) -> None: ...  # raises ValueError naming the keys

    def retrain_settings(self, mode: RetrainRules) -> tuple[str, ...]: ...


class RetrainRules(Protocol):
    """What the schema asks of a retraining mode (the object also retrains: experiment/retrain.py)."""

    name: str
    description: str
    schedules: tuple[str, ...]
    settings: tuple[str, ...]

    def validate(self, spec: ExperimentSpec) -> None: ...


SCHEDULES: Registry[ScheduleRules] = Registry("schedule")
RETRAIN_MODES: Registry[RetrainRules] = Registry("retraining mode")


def datasets() -> Registry[Any]:
    from prunebench.data import DATASETS

    return DATASETS


def models() -> Registry[Any]:
    from prunebench.models import MODELS

    return MODELS


def is_lm_model(name: str) -> bool:
    """Whether ``model`` names a causal language model (``smollm2-135m``, ``hf:<dir-or-id>``)."""
    from prunebench.models.lm import is_lm_model as lm

    return lm(name)


def is_text_dataset(name: str) -> bool:
    """Whether ``dataset`` names a text corpus (``shakespeare``, ``text:<path>``, ``wikitext2``)."""
    from prunebench.data.text import is_text_dataset as text

    return text(name)


def lm_models() -> Registry[Any]:
    from prunebench.models.lm import LM_MODELS

    return LM_MODELS


def text_datasets() -> Registry[Any]:
    from prunebench.data.text import TEXT_DATASETS

    return TEXT_DATASETS


def strategies() -> Registry[Method]:
    """Every method, weight, channel and language-model alike, registered once; each declares
    what it prunes and needs (``Method.form``), so the schema asks it and probes nothing."""
    import prunebench.pruning.channels  # noqa: F401  (registers the channel strategies)
    from prunebench.pruning.scores import STRATEGIES

    return STRATEGIES


def channel_strategies() -> StrategyView[ChannelStrategy]:
    """The strategies that score whole channels (``prune.structure: channel``): a view."""
    from prunebench.pruning.channels import CHANNEL_SCORERS

    return CHANNEL_SCORERS


def parse_structure(text: str) -> Any:
    """``prune.structure`` parsed; ConfigError if it is none of the known forms."""
    from prunebench.pruning.structures import parse_structure as parse

    return parse(text)
