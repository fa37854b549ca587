"""The names a spec is validated against, in a layer below the spec.

The spec schema (:mod:`prunebench.spec`) knows names, not implementations: it imports nothing
that loads data, builds a model or prunes. Schedules and retraining modes, with the rules the
schema asks of them, are defined here (:mod:`prunebench.catalog.schedules`,
:mod:`prunebench.catalog.retrain_modes`), so reading them tells what ``one-shot`` or
``weight-rewind`` means; :mod:`prunebench.experiment` extends them with how they run. Datasets,
models, strategies and structures keep their registries beside their implementations and are
looked up through the functions below, which import them when a spec is validated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prunebench.catalog.retrain_modes import RETRAIN_MODES, RetrainRules
from prunebench.catalog.schedules import SCHEDULES, ScheduleRules
from prunebench.registry import Registry

if TYPE_CHECKING:
    from prunebench.pruning.channels.scorers import ChannelStrategy
    from prunebench.pruning.scores.base import Method, StrategyView

__all__ = [
    "RETRAIN_MODES", "SCHEDULES", "RetrainRules", "ScheduleRules", "channel_strategies", "datasets", "is_lm_model",
    "is_text_dataset", "lm_models", "models", "parse_structure", "strategies", "text_datasets",
]


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


def lm_structures() -> str:
    """How the structures a language model is pruned under are written, for a message."""
    from prunebench.pruning.structures import language_model_structures, spellings

    return spellings(language_model_structures())


def allocations() -> Registry[Any]:
    """The registered layer allocations of language models (``prune.allocation``)."""
    from prunebench.pruning.allocations import ALLOCATIONS

    return ALLOCATIONS


def parse_allocation(name: str) -> Any:
    """``prune.allocation`` as its allocation object; ConfigError for an unknown name."""
    from prunebench.pruning.allocations import parse_allocation as parse

    return parse(name)
