"""The strategy contract and the one registry of strategies, weight and channel alike.

A strategy is one decorated function plus (optionally) a frozen dataclass of its own
hyperparameters, which configs fill in through ``prune.options``, and the structures it
scores: a weight strategy (``(inputs, options) -> {param_name: scores}``) scores single
weights, so any weight structure (unstructured, N:M, block) can select from its scores; a
channel strategy (:mod:`prunebench.pruning.channels.scorers`) scores whole channels.
Low scores are pruned.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import torch
from pydantic import ConfigDict, TypeAdapter, ValidationError
from torch import nn

from prunebench.errors import ConfigError, UnknownNameError
from prunebench.modes import eval_mode  # noqa: F401  (the scorers' way to score in eval mode)
from prunebench.registry import Registry

Batch = tuple[torch.Tensor, torch.Tensor]
Scores = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class ScoreInputs:
    """Everything a scorer may look at. Scorers must not change the model's weights or mode."""

    model: nn.Module
    params: Mapping[str, nn.Parameter]  # the prunable parameters, by name
    batches: Sequence[Batch]  # training batches; data-free scorers ignore them
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: torch.Generator  # the only source of randomness a scorer may use


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """For strategies without hyperparameters."""


OptionsT = TypeVar("OptionsT")
ScorerFn = Callable[[ScoreInputs, Any], Scores]
# After its mask is selected, a strategy may rewrite the weights it kept, in place (Optimal Brain
# Surgeon's compensation, least-squares reconstruction): ``update(inputs, keep, options)`` with
# ``keep`` the selected {param_name: bool tensor}. It runs on the weights as they were scored
# (the pruned ones still hold their values, which OBS compensates for); the mask is applied after
# it, so an update can only move the survivors.
UpdateFn = Callable[[ScoreInputs, Mapping[str, torch.Tensor], Any], None]


# The structures a weight strategy's scores can be selected under (``prunebench.pruning.structures``).
WEIGHT_STRUCTURES = ("unstructured", "nm", "block")


def one_round(options: Any) -> int:
    return 1


@dataclasses.dataclass(frozen=True)
class LayerStatistics:
    """What was measured at one Linear layer's input over the calibration tokens (the tokens
    are the rows of ``X``, ``(tokens, in)``); a field is None when the strategy did not ask."""

    tokens: int
    sq_norms: torch.Tensor | None = None  # (in,): ||X_j||_2^2, the squared norm of each input feature
    hessian: torch.Tensor | None = None  # (in, in): (2/tokens) X^T X (prunebench.pruning.obs)


@dataclasses.dataclass(frozen=True)
class LayerTarget:
    """What to prune from one ``(out, in)`` weight: ``sparsity`` (unstructured, compared per
    output row with scope ``row``, over the whole layer with ``layer``) or ``n`` kept of every
    ``m`` consecutive inputs. ``pruned`` marks weights an earlier mask pruned: they stay pruned."""

    sparsity: float | None = None
    n: int | None = None
    m: int | None = None
    scope: Literal["row", "layer"] = "row"
    pruned: torch.Tensor | None = None


# ``score(weight, stats, options, generator) -> scores`` (low are pruned) or ``prune(weight,
# stats, target, options) -> (new weight, keep)`` for strategies that also rewrite the weights.
LayerScoreFn = Callable[[torch.Tensor, LayerStatistics, Any, torch.Generator], torch.Tensor]
LayerPruneFn = Callable[[torch.Tensor, LayerStatistics, LayerTarget, Any], tuple[torch.Tensor, torch.Tensor]]
LM_SCOPES = ("row", "layer", "global")


@dataclasses.dataclass(frozen=True)
class LayerPruner:
    """How a strategy prunes the Linear layers of a causal language model (its ``lm`` form).

    ``statistics`` is what the layer-sequential driver (:mod:`prunebench.pruning.layerwise`)
    measures at each Linear's input: ``none`` (data-free; no calibration pass), ``norms`` or
    ``hessian``. ``scopes`` are the scopes it accepts, its default first; ``global`` only
    where scores are comparable across layers without data. Exactly one of ``score`` (the
    driver selects) and ``prune`` (the strategy selects and rewrites the weight) is given."""

    description: str
    statistics: Literal["none", "norms", "hessian"]
    scopes: tuple[str, ...]
    score: LayerScoreFn | None = None
    prune: LayerPruneFn | None = None

    def __post_init__(self) -> None:
        if (self.score is None) == (self.prune is None):
            raise ValueError("a LayerPruner has exactly one of score and prune")
        if not self.scopes or set(self.scopes) - set(LM_SCOPES):
            raise ValueError(f"LayerPruner scopes must be among {LM_SCOPES}, got {self.scopes}")
        if "global" in self.scopes and (self.statistics != "none" or self.score is None):
            raise ValueError("scope 'global' needs data-free scores, comparable across layers")

    @property
    def default_scope(self) -> str:
        return self.scopes[0]


@dataclasses.dataclass(frozen=True)
class Strategy(Generic[OptionsT]):
    """A weight strategy. An iterative one (SynFlow) declares ``rounds``: the selection layer
    then scores, selects a provisional mask, and rescores the masked model that many times
    (:func:`prunebench.pruning.rounds.scores_for_selection`); ``rank`` is the key its
    provisional selections rank by (SynFlow: the log, as flows overflow float32)."""

    name: str
    score: Callable[[ScoreInputs, OptionsT], Scores] | None  # None: it prunes language models only
    options_type: type[OptionsT]
    structures: tuple[str, ...] = WEIGHT_STRUCTURES  # () when it prunes language models only
    rounds: Callable[[OptionsT], int] = one_round
    rank: Callable[[torch.Tensor], torch.Tensor] | None = None
    update: UpdateFn | None = None  # rewrites the kept weights after selection (see UpdateFn)
    lm: LayerPruner | None = None  # its form for causal language models, where it has one

    @property
    def description(self) -> str:
        if self.score is None:
            return self.lm.description if self.lm is not None else ""
        return first_line(self.score)

    @property
    def prunes_classifiers(self) -> bool:
        return self.score is not None

    @property
    def prunes_language_models(self) -> bool:
        return self.lm is not None

    def parse_options(self, raw: Mapping[str, Any] | None) -> OptionsT:
        """Validate ``prune.options`` against this strategy's dataclass."""
        return parse_options(self.name, self.options_type, raw)

    def __call__(self, inputs: ScoreInputs, options: OptionsT | None = None) -> Scores:
        if self.score is None:
            raise ValueError(f"strategy {self.name!r} prunes language models only")
        scores = self.score(inputs, options if options is not None else self.options_type())
        check_scores(self.name, inputs.params, scores)
        return scores


def parse_options(strategy: str, options_type: type[OptionsT], raw: Mapping[str, Any] | None) -> OptionsT:
    """Validate ``prune.options`` against a strategy's options dataclass (weights or channels)."""
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(options_type)}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"prune.options.{key}: unknown option of strategy {strategy} (allowed: {allowed})")
    check_option_values(strategy, options_type, raw)
    try:
        return TypeAdapter(options_type).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        raise ConfigError(f"prune.options.{where}: {first['msg']} (strategy {strategy})") from None


def is_scalar(hint: Any) -> bool:
    """Whether a field holds one number, bool, string or None (not a list or mapping)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return is_scalar(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return all(is_scalar(arg) for arg in typing.get_args(hint))
    return origin is typing.Literal or hint in (int, float, bool, str, type(None))


def check_option_values(strategy: str, options_type: type, raw: Mapping[str, Any]) -> None:
    """Options are taken as written, like the spec's own keys: a bool is not a count, "0.1" is
    not a number, and every float is finite (an integer still fills a float option)."""
    hints = typing.get_type_hints(options_type, include_extras=True)
    for key, value in raw.items():
        strict = ConfigDict(strict=is_scalar(hints[key]), allow_inf_nan=False)  # YAML lists still fill tuples
        try:
            TypeAdapter(hints[key], config=strict).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (key, *first["loc"]))
            raise ConfigError(f"prune.options.{where}: {first['msg']} (strategy {strategy})") from None



def first_line(fn: Callable[..., Any]) -> str:
    """The first paragraph of a scorer's docstring on one line: its description."""
    paragraph = (fn.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


class RegisteredStrategy(Protocol):
    """What every registered strategy, weight or channel, tells the rest of prunebench."""

    name: str
    options_type: type
    structures: tuple[str, ...]  # the structure kinds it scores: unstructured, nm, block, channel

    @property
    def description(self) -> str: ...

    def parse_options(self, raw: Mapping[str, Any] | None) -> Any: ...


# The one registry: weight strategies register here with register_scorer, channel strategies
# with register_channel_scorer (prunebench.pruning.channels.scorers).
STRATEGIES: Registry[Any] = Registry("strategy")


def register_scorer(
    name: str,
    options: type = NoOptions,
    rounds: Callable[[Any], int] = one_round,
    rank: Callable[[torch.Tensor], torch.Tensor] | None = None,
    update: UpdateFn | None = None,
    lm: LayerPruner | None = None,
) -> Callable[[ScorerFn], ScorerFn]:
    """Register ``fn(inputs, options) -> scores`` as weight strategy ``name`` (``update``: see
    UpdateFn; ``lm``: its form for language models, see LayerPruner)."""

    def decorator(fn: ScorerFn) -> ScorerFn:
        STRATEGIES.add(name, Strategy(name=name, score=fn, options_type=options, rounds=rounds, rank=rank,
                                      update=update, lm=lm))
        return fn

    return decorator


def register_lm_strategy(name: str, pruner: LayerPruner, options: type = NoOptions) -> LayerPruner:
    """Register a strategy that prunes causal language models only (no classifier form)."""
    STRATEGIES.add(name, Strategy(name=name, score=None, options_type=options, structures=(), lm=pruner))
    return pruner


class StrategyView:
    """The registered strategies that score one structure kind (read-only, always current)."""

    def __init__(self, registry: Registry[Any], structure: str, kind: str) -> None:
        self.registry, self.structure, self.kind = registry, structure, kind

    def names(self) -> list[str]:
        return [n for n in self.registry.names() if self.structure in self.registry.get(n).structures]

    def get(self, name: str) -> Any:
        if name not in self:
            close = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r} (known: {close})")
        return self.registry.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.registry and self.structure in self.registry.get(name).structures  # type: ignore[arg-type]

    def __iter__(self) -> Any:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


WEIGHT_STRATEGIES = StrategyView(STRATEGIES, "unstructured", "weight strategy")


def check_scores(name: str, params: Mapping[str, torch.Tensor], scores: Scores) -> None:
    if set(scores) != set(params):
        raise ValueError(f"strategy {name!r} scored {sorted(scores)}, expected {sorted(params)}")
    for pname, score in scores.items():
        if score.shape != params[pname].shape:
            raise ValueError(f"strategy {name!r}: scores for {pname} have the wrong shape")
        # A NaN anywhere makes the sum NaN: one fast reduction, the exact test only then.
        if score.is_floating_point() and math.isnan(float(score.sum())) and bool(torch.isnan(score).any()):
            raise ValueError(f"strategy {name!r} returned NaN scores for {pname}")


def module_of(model: nn.Module, param_name: str) -> tuple[nn.Module, str]:
    """The module that owns ``param_name`` and the attribute name on it."""
    module_name, _, attr = param_name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attr
