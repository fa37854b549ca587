"""The method contract and the one registry of methods, for every model family.

A method (:class:`Method`) is registered once, by name, and declares what it does: which model
kinds it prunes, what one call scores (single weights, whole channels, one Linear layer of a
language model from calibration statistics), what it needs (nothing, training batches,
calibration norms or Hessians), whether it trains first, whether it rewrites the weights it
keeps, and whether its scores compare across layers (``scope: global``). Everything else asks
it (:meth:`Method.form`). Its forms are plain functions plus (optionally) a frozen dataclass of
its own hyperparameters, which configs fill in through ``prune.options``: a weight strategy
(``(inputs, options) -> {param_name: scores}``) scores single weights, so any weight structure
(unstructured, N:M, block) can select from its scores; a channel strategy
(:mod:`prunebench.pruning.channels.scorers`) scores whole channels; a layer form
(:class:`LayerPruner`) prunes the Linear layers of a causal language model. Low scores are pruned.
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
from prunebench.pruning.structures import language_model_structures, structures_scoring
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


def one_round(options: Any) -> int:
    return 1


@dataclasses.dataclass(frozen=True)
class LayerStatistics:
    """What was measured at one Linear layer's input over the calibration tokens (the tokens
    are the rows of ``X``, ``(tokens, in)``); a field is None when the strategy did not ask."""

    tokens: int
    sq_norms: torch.Tensor | None = None  # (in,): ||X_j||_2^2, the squared norm of each input feature
    hessian: torch.Tensor | None = None  # (in, in): (2/tokens) X^T X (prunebench.pruning.obs)
    # ``moments`` (DSnoT) adds: the sum of each input feature over the tokens, the mean over the
    # calibration sequences of each feature's variance over a sequence's tokens, and that count.
    sums: torch.Tensor | None = None  # (in,)
    variance: torch.Tensor | None = None  # (in,)
    sequences: int = 0


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
# ``update(weight, stats, keep, options) -> new weight``: with ``score``, rewrites the weights the
# driver kept (OBS's compensation), on the weight as it was scored; the mask is applied after it.
LayerUpdateFn = Callable[[torch.Tensor, LayerStatistics, torch.Tensor, Any], torch.Tensor]


class LayerRefineFn(Protocol):
    """``refine(weight, stats, scores, keep, target, options, name=, generator=) -> keep``: with
    ``score``, moves the driver's selection ``keep`` (made from ``scores``) without changing its
    count in any output row or N:M group (DSnoT's prune-and-grow); weights are not rewritten."""

    def __call__(self, weight: torch.Tensor, stats: LayerStatistics, scores: torch.Tensor, keep: torch.Tensor,
                 target: LayerTarget, options: Any, *, name: str, generator: torch.Generator) -> torch.Tensor: ...


LM_SCOPES = ("row", "layer", "global")


@dataclasses.dataclass(frozen=True)
class LayerPruner:
    """How a method prunes the Linear layers of a causal language model (its layer form).

    ``statistics`` is what the layer-sequential driver (:mod:`prunebench.pruning.layerwise`)
    measures at each Linear's input: ``none`` (data-free; no calibration pass), ``norms``,
    ``moments`` (the norms, feature sums and variances) or ``hessian``. ``scopes`` are the scopes it accepts, its default first; ``global`` only
    where scores are comparable across layers without data. Exactly one of ``score`` (the
    driver selects) and ``prune`` (the method selects and rewrites the weight) is given;
    ``update`` (with ``score`` and calibration statistics) rewrites the kept weights after the
    driver's selection; ``refine`` (with ``score`` and calibration statistics) moves the selected
    mask, keeping its counts (see :class:`LayerRefineFn`)."""

    description: str
    statistics: Literal["none", "norms", "moments", "hessian"]
    scopes: tuple[str, ...]
    score: LayerScoreFn | None = None
    prune: LayerPruneFn | None = None
    update: LayerUpdateFn | None = None
    refine: LayerRefineFn | None = None

    def __post_init__(self) -> None:
        if (self.score is None) == (self.prune is None):
            raise ValueError("a LayerPruner has exactly one of score and prune")
        if self.update is not None and (self.score is None or self.statistics == "none"):
            raise ValueError("a LayerPruner's update needs score and calibration statistics")
        if self.refine is not None and (self.score is None or self.statistics == "none"):
            raise ValueError("a LayerPruner's refine needs score and calibration statistics")
        if not self.scopes or set(self.scopes) - set(LM_SCOPES):
            raise ValueError(f"LayerPruner scopes must be among {LM_SCOPES}, got {self.scopes}")
        if "global" in self.scopes and (self.statistics != "none" or self.score is None):
            raise ValueError("scope 'global' needs data-free scores, comparable across layers")

    @property
    def default_scope(self) -> str:
        return self.scopes[0]


# The model kinds a method can prune, and what each of its forms needs: nothing (data-free: its
# scores do not depend on any data), training batches (classifiers), or statistics of each Linear
# layer's inputs over calibration tokens (language models: squared feature norms, those with the
# features' sums and variances, or the Hessian).
ModelKind = Literal["classifier", "language_model"]
CLASSIFIER: ModelKind = "classifier"
LANGUAGE_MODEL: ModelKind = "language_model"
MODEL_KINDS: tuple[ModelKind, ...] = (CLASSIFIER, LANGUAGE_MODEL)
Needs = Literal["nothing", "batches", "norms", "moments", "hessian", "fluctuation", "gradients", "hidden_states"]
# What one call of a form scores: single weights, whole channels, one Linear layer at a time, whole
# units of decoder blocks (width) or whole decoder blocks (depth).
Unit = Literal["weights", "channels", "linear", "width", "depth"]
CLASSIFIER_SCOPES = ("global", "layer")


@dataclasses.dataclass(frozen=True)
class Form:
    """What a method declares for one model kind; read by the spec, the CLI and the contract test."""

    kind: ModelKind
    unit: Unit
    needs: Needs
    training_phase: bool  # it trains the model its own way before scoring (slimming's L1 phase)
    reconstructs: bool  # it rewrites the weights it keeps (OBS, SparseGPT, least squares)
    scopes: tuple[str, ...]  # the scopes it accepts, its default first; "global" only if comparable
    structures: tuple[str, ...]  # the structure kinds it selects under

    @property
    def default_scope(self) -> str:
        return self.scopes[0]

    def summary(self) -> str:
        """One line for `prunebench list strategies`, e.g. "classifiers: scores weights
        (unstructured, nm, block), data-free, scopes global, layer"."""
        what = {"weights": f"scores weights ({', '.join(self.structures)})", "channels": "scores whole channels",
                "linear": f"prunes one Linear at a time ({', '.join(self.structures)})",
                "width": f"prunes whole units of decoder blocks ({', '.join(self.structures)})",
                "depth": f"removes whole decoder blocks ({', '.join(self.structures)})"}[self.unit]
        parts = [f"{'classifiers' if self.kind == CLASSIFIER else 'language models'}: {what}", NEEDS_TEXT[self.needs]]
        parts += ["trains first"] * self.training_phase + ["reconstructs weights"] * self.reconstructs
        return ", ".join([*parts, f"scopes {', '.join(self.scopes)}"])


def layer_structures() -> tuple[str, ...]:
    """The structures a layer form prunes under: every language-model structure but the width and
    depth ones, whose whole units only width and depth strategies choose
    (:mod:`prunebench.pruning.scores.width`, :mod:`prunebench.pruning.scores.depth`)."""
    whole_units = structures_scoring("width") + structures_scoring("depth")
    return tuple(kind for kind in language_model_structures() if kind not in whole_units)


NEEDS_TEXT = {"nothing": "data-free", "batches": "training batches", "norms": "calibration input norms",
              "moments": "calibration input norms, means and variances", "hessian": "calibration Hessians",
              "fluctuation": "calibration input means and variances", "gradients": "calibration gradients",
              "hidden_states": "calibration hidden states at the block boundaries"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Method:
    """One pruning method, registered once in :data:`STRATEGIES`, whatever it prunes.

    A method declares what it needs and what it does, and the rest of prunebench asks it
    (:meth:`form`) instead of probing for attributes. Its classifier form is given by a
    subclass: :class:`Strategy` scores single weights, :class:`prunebench.pruning.channels.
    scorers.ChannelStrategy` whole channels; this base class has none. ``layer`` is its form
    for causal language models (one Linear at a time, see :class:`LayerPruner`), where it has
    one. A method valid for both model kinds (magnitude, random) is one object with both forms.

    ``needs`` is what the classifier form reads: ``nothing`` (data-free: its scores must not
    depend on the batches' values) or ``batches``. ``comparable`` says whether its scores
    compare across layers: only then does it accept ``scope: global``, and its default scope
    is ``global`` for classifiers; a layer-local saliency (OBS: each layer's reconstruction
    error, in that layer's own units) is ``comparable=False`` and prunes per layer.
    """

    name: str
    options_type: type = NoOptions
    summary: str = ""  # one line for `prunebench list`; unset: the scorer's docstring
    needs: Literal["nothing", "batches"] = "batches"
    comparable: bool = True
    layer: LayerPruner | None = None  # its form for causal language models, where it has one
    # What a subclass's classifier form sets; the base class has no classifier form.
    unit: Unit | None = dataclasses.field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.layer is not None and "global" in self.layer.scopes and not self.comparable:
            raise ValueError(f"method {self.name!r}: scope 'global' needs scores comparable across layers")
        if not self.kinds:
            raise ValueError(f"method {self.name!r} prunes neither classifiers nor language models")

    @property
    def structures(self) -> tuple[str, ...]:
        """The structure kinds its classifier form selects under: every registered structure
        that selects from what it scores (weights or channels), so a new structure needs no
        change here (:mod:`prunebench.pruning.structures`)."""
        return structures_scoring(self.unit) if self.unit is not None else ()

    @property
    def training_phase(self) -> bool:
        """Whether its classifier form trains the model its own way before scoring."""
        return False

    @property
    def reconstructs(self) -> bool:
        """Whether its classifier form rewrites the kept weights after selection."""
        return False

    @property
    def description(self) -> str:
        return self.summary or (self.layer.description if self.layer is not None else "")

    @property
    def kinds(self) -> tuple[ModelKind, ...]:
        return tuple(kind for kind in MODEL_KINDS if self.form(kind) is not None)

    def prunes(self, kind: ModelKind) -> bool:
        return self.form(kind) is not None

    def form(self, kind: ModelKind) -> Form | None:
        """Its declarations for ``kind``, or None where it does not prune that kind."""
        if kind == LANGUAGE_MODEL:
            if self.layer is None:
                return None
            needs: Needs = "nothing" if self.layer.statistics == "none" else self.layer.statistics
            return Form(LANGUAGE_MODEL, "linear", needs, training_phase=False,
                        reconstructs=self.layer.prune is not None or self.layer.update is not None, scopes=self.layer.scopes,
                        structures=layer_structures())
        if self.unit is None:
            return None
        scopes = CLASSIFIER_SCOPES if self.comparable else ("layer",)
        return Form(CLASSIFIER, self.unit, self.needs, self.training_phase, self.reconstructs, scopes, self.structures)

    def check_scope(self, scope: str, kind: ModelKind) -> None:
        """ConfigError (one line, naming ``prune.scope``) unless its ``kind`` form accepts ``scope``."""
        form = self.form(kind)
        if form is None or scope in form.scopes:
            return
        layer_local = scope == "global" and not self.comparable
        why = ": its scores are in each layer's own units and do not compare across layers" if layer_local else ""
        raise ConfigError(f"prune.scope {scope!r}: strategy {self.name!r} does not prune with scope {scope!r}{why} "
                          f"(allowed: {', '.join(form.scopes)})")

    def parse_options(self, raw: Mapping[str, Any] | None) -> Any:
        """Validate ``prune.options`` against this method's dataclass."""
        return parse_options(self.name, self.options_type, raw)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Strategy(Method, Generic[OptionsT]):
    """A method whose classifier form scores single weights: ``score(inputs, options) ->
    {param_name: scores}``. An iterative one (SynFlow) declares ``rounds``: the selection layer
    then scores, selects a provisional mask, and rescores the masked model that many times
    (:func:`prunebench.pruning.rounds.scores_for_selection`); ``rank`` is the key its
    provisional selections rank by (SynFlow: the log, as flows overflow float32)."""

    score: Callable[[ScoreInputs, OptionsT], Scores]
    rounds: Callable[[OptionsT], int] = one_round
    rank: Callable[[torch.Tensor], torch.Tensor] | None = None
    update: UpdateFn | None = None  # rewrites the kept weights after selection (see UpdateFn)
    unit: Unit | None = dataclasses.field(default="weights", init=False)

    @property
    def reconstructs(self) -> bool:
        return self.update is not None

    @property
    def description(self) -> str:
        return self.summary or first_line(self.score)

    def __call__(self, inputs: ScoreInputs, options: OptionsT | None = None) -> Scores:
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


# The one registry of methods: weight strategies register here with register_scorer, channel
# strategies with register_channel_scorer (prunebench.pruning.channels.scorers), methods for
# language models only with register_method.
STRATEGIES: Registry[Method] = Registry("strategy")
MethodT = TypeVar("MethodT", bound=Method)


def register_method(method: MethodT) -> MethodT:
    """Register ``method`` under its name (any form: weights, channels, language models)."""
    STRATEGIES.add(method.name, method)
    return method


def register_scorer(
    name: str,
    options: type = NoOptions,
    rounds: Callable[[Any], int] = one_round,
    rank: Callable[[torch.Tensor], torch.Tensor] | None = None,
    update: UpdateFn | None = None,
    layer: LayerPruner | None = None,
    needs: Literal["nothing", "batches"] = "batches",
    comparable: bool = True,
) -> Callable[[ScorerFn], ScorerFn]:
    """Register ``fn(inputs, options) -> scores`` as weight strategy ``name`` (``update``: see
    UpdateFn; ``layer``: its form for language models, see LayerPruner; ``needs`` and
    ``comparable``: see Method)."""

    def decorator(fn: ScorerFn) -> ScorerFn:
        register_method(Strategy(name=name, score=fn, options_type=options, rounds=rounds, rank=rank, update=update,
                                 layer=layer, needs=needs, comparable=comparable))
        return fn

    return decorator


class StrategyView(Generic[MethodT]):
    """The registered methods of one form class (read-only, always current): a typed view, so
    the pruning step gets a :class:`Strategy` (or a channel strategy) with its callables."""

    def __init__(self, registry: Registry[Method], form: type[MethodT], kind: str) -> None:
        self.registry, self.form, self.kind = registry, form, kind

    def names(self) -> list[str]:
        return [n for n in self.registry.names() if isinstance(self.registry.get(n), self.form)]

    def get(self, name: str) -> MethodT:
        method = self.registry.get(name) if name in self.registry else None
        if not isinstance(method, self.form):
            close = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r} (known: {close})")
        return method

    def __contains__(self, name: object) -> bool:
        return name in self.registry and isinstance(self.registry.get(name), self.form)  # type: ignore[arg-type]

    def __iter__(self) -> Any:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


WEIGHT_STRATEGIES: StrategyView[Strategy[Any]] = StrategyView(STRATEGIES, Strategy, "weight strategy")


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
