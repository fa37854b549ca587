"""The ``prune`` section: strategy, structure, schedule, target, and each schedule's own settings."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from prunebench import catalog
from prunebench.errors import either
from prunebench.pruning.policy import PrunablePolicy
from prunebench.spec.base import Bool, Float, Int, Spec, _default
from prunebench.spec.language_model import CalibrationSpec
from prunebench.target import DEFAULT_COMPRESSION, DEFAULT_SPARSITY, Target

CHANNEL = "channel"  # prune.structure for filter/channel pruning
MERGE_THRESHOLD = 0.45  # prune.merge_threshold: Kim et al. 2020's code, LeNet-300-100 (pruning.channels.merge)


class IterativeSpec(Spec):
    """Rounds of prune -> retrain, each removing ``rate`` of what remains (schedule ``iterative``).

    With ``rounds`` unset, rounds continue until ``prune.compression`` (the last round stops
    exactly there). With ``rounds`` set, exactly that many rounds run and ``prune.compression``
    must be left out; ``layer_rates`` (glob over parameter names -> rate, scope ``layer`` only)
    then gives some layers their own rate, e.g. ``{"5.weight": 0.1}`` for an output layer.
    """

    rate: Float = Field(default=0.2, gt=0, lt=1)
    rounds: Int | None = Field(default=None, ge=1)
    layer_rates: dict[str, Annotated[Float, Field(gt=0, lt=1)]] = Field(default_factory=dict)


class GradualSpec(Spec):
    """Zhu & Gupta's cubic schedule during fine-tuning (schedule ``gradual``), in optimizer steps.

    s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with t0 = ``start_step``, dt = ``frequency``,
    n = (``end_step`` - t0) // dt and s_f from ``prune.compression``. ``end_step`` unset means
    three quarters of the fine-tuning steps, leaving the last quarter to recover.
    """

    initial_sparsity: Float = Field(default=0.0, ge=0, lt=1)
    start_step: Int = Field(default=0, ge=0)
    end_step: Int | None = Field(default=None, ge=1)
    frequency: Int = Field(default=100, ge=1)


SHUFFLE_SCHEDULES = ("one-shot", "at-init")  # schedules whose final mask is one selection


class PruneSpec(Spec):
    strategy: str = "magnitude"
    scope: Literal["global", "layer", "row"] = "global"  # row: per output row (language models)
    compression: Float | None = Field(default=None, gt=1)  # whole-model total / nonzero; unset: 4 (see target)
    score_batches: Int = Field(default=8, ge=1)  # training batches shown to data-driven scorers
    batch_size: Int = Field(default=128, ge=1)  # size of each of those batches
    options: dict[str, Any] = Field(default_factory=dict)  # the strategy's own hyperparameters
    prunable: PrunablePolicy = PrunablePolicy()
    schedule: str = "one-shot"  # a registered schedule (prunebench list schedules)
    structure: str = "unstructured"  # or "N:M" (e.g. "2:4"), "block:RxC" (e.g. "block:4x4"), "channel"
    speedup: Float | None = Field(default=None, gt=1)  # channel pruning: a MAC-reduction target
    channel_fraction: Float | None = Field(default=None, gt=0, lt=1)  # channel pruning: channels to remove
    iterative: IterativeSpec = Field(default_factory=IterativeSpec)
    gradual: GradualSpec = Field(default_factory=GradualSpec)
    # language models: the target is the fraction of prunable weights (unset: 0.5, or N:M's own)
    sparsity: Float | None = Field(default=None, gt=0, lt=1)
    allocation: str = "uniform"  # sparsity across layers: a registered allocation (owl: outlier-weighted)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
    merge: Bool = False  # channel pruning: Neuron Merging of each pruned channel into a kept one
    merge_threshold: Float = Field(default=MERGE_THRESHOLD, gt=0, le=1)  # its cosine-similarity threshold
    shuffle: Bool = False  # layer-shuffle control: the selection permuted at random within each tensor

    @field_validator("structure", mode="before")
    @classmethod
    def known_structure(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 2:4 as the base-60 number 124
            raise ValueError(
                f"got the number {value}: quote N:M, e.g. '2:4' in YAML, prune.structure=\"'2:4'\" as an override"
            )
        if isinstance(value, str):
            catalog.parse_structure(value)
        return value

    @field_validator("schedule")
    @classmethod
    def known_schedule(cls, name: str) -> str:
        catalog.SCHEDULES.get(name)
        return name

    @model_validator(mode="after")
    def consistent_schedule(self) -> PruneSpec:
        """Settings of one schedule must not be given to another; the structure says which
        targets and schedules it accepts."""
        schedule = catalog.SCHEDULES.get(self.schedule)
        for other in map(catalog.SCHEDULES.get, catalog.SCHEDULES):
            section = other.section
            if section and other is not schedule and getattr(self, section) != _default(type(self), section):
                raise ValueError(f"prune.{section} is only used by prune.schedule {other.name!r}, not {self.schedule!r}")
        schedule.validate(self)
        if self.shuffle and (self.structure != "unstructured" or self.schedule not in SHUFFLE_SCHEDULES):
            raise ValueError(
                "prune.shuffle needs prune.structure 'unstructured' and prune.schedule "
                f"{either(SHUFFLE_SCHEDULES)} (a shuffled N:M, block or channel mask, "
                "or a mask refined over rounds, is no longer that structure or schedule)"
            )
        catalog.parse_structure(self.structure).validate(self, {n: catalog.SCHEDULES.get(n) for n in catalog.SCHEDULES})
        return self

    @model_validator(mode="after")
    def merge_after_channel_pruning(self) -> PruneSpec:
        """Neuron Merging rewrites the layers that read pruned channels: channel pruning only."""
        if self.merge and self.structure != CHANNEL:
            raise ValueError(f"prune.merge: Neuron Merging needs prune.structure 'channel', not {self.structure!r}")
        if not self.merge and self.merge_threshold != MERGE_THRESHOLD:
            raise ValueError("prune.merge_threshold is only used with prune.merge: true")
        if self.merge and catalog.strategies().get(self.strategy).reconstructs:
            raise ValueError(
                f"prune.merge: prune.strategy {self.strategy!r} already rewrites the layers reading the pruned "
                "channels; Neuron Merging on top would compensate them twice"
            )
        return self

    @property
    def _is_nm(self) -> bool:
        return catalog.parse_structure(self.structure).fixed_sparsity is not None  # N:M: 1 - N/M

    @field_validator("allocation")
    @classmethod
    def known_allocation(cls, name: str) -> str:
        if name not in catalog.allocations():
            raise ValueError(catalog.allocations().unknown_message(name))
        return name

    @field_validator("strategy")
    @classmethod
    def known_strategy(cls, name: str) -> str:
        registry = catalog.strategies()
        if name not in registry:
            close = difflib.get_close_matches(name, registry.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            units = {n: registry.get(n).unit for n in registry.names()}  # what each classifier form scores
            weights = [n for n, unit in units.items() if unit == "weights"]
            channels = [n for n, unit in units.items() if unit == "channels"]
            lm_only = [n for n in registry.names() if not registry.get(n).prunes("classifier")]
            lm_hint = f"; for language models only: {', '.join(lm_only)}" if lm_only else ""
            raise ValueError(
                f"unknown strategy {name!r}{hint} (known: {', '.join(weights)}; with structure "
                f"'channel': {', '.join(channels)}{lm_hint})"
            )
        return name

    @model_validator(mode="before")
    @classmethod
    def method_default_scope(cls, data: Any) -> Any:
        """A classifier's ``prune.scope`` left out is its method's own default: ``global`` where its
        scores compare across layers, else ``layer`` (OBS); the filled-in value is hashed as given.
        A language model's was filled in before (ExperimentSpec.lm_default_scope)."""
        if not isinstance(data, Mapping) or "scope" in data:
            return data
        name = data.get("strategy", "magnitude")
        if not isinstance(name, str) or name not in catalog.strategies():
            return data  # an unknown name: its own validator says so
        form = catalog.strategies().get(name).form("classifier")
        return data if form is None else {**data, "scope": form.default_scope}

    @model_validator(mode="after")
    def strategy_fits_structure(self) -> PruneSpec:
        """The strategy says which structures it scores and validates its own options."""
        registry = catalog.strategies()
        strategy = registry.get(self.strategy)
        structure = catalog.parse_structure(self.structure)
        if not strategy.prunes("classifier"):  # the model decides (ExperimentSpec)
            strategy.parse_options(self.options)
            return self
        if self.scope == "global":  # refused where the scores are layer-local (OBS)
            strategy.check_scope(self.scope, "classifier")
        if structure.kind not in strategy.structures:
            if structure.scores != strategy.unit:  # weights against channels: name what would fit
                fitting = [n for n in registry.names() if structure.kind in registry.get(n).structures]
                if strategy.unit == "weights":
                    raise ValueError(
                        f"prune.strategy {self.strategy!r} scores single weights; structure {self.structure!r} needs one of "
                        f"{', '.join(fitting)}"
                    )
                raise ValueError(f"prune.strategy {self.strategy!r} scores {strategy.unit}: it needs prune.structure "
                                 f"{either(strategy.structures)}")
            raise ValueError(
                f"prune.strategy {self.strategy!r} does not score prune.structure {self.structure!r} "
                f"(it scores: {', '.join(strategy.structures)})"
            )
        strategy.parse_options(self.options)
        return self

    @property
    def resolved_compression(self) -> float:
        """The compression to prune to: ``prune.compression``, or 4 when it is left out."""
        return self.compression if self.compression is not None else DEFAULT_COMPRESSION

    @property
    def target(self) -> Target:
        """What this section prunes to (:mod:`prunebench.target`): the same Target result.json,
        the database and the report hold. A language model's sparsity is filled in when its
        ExperimentSpec is built, so a section taken from a spec gives the run's target."""
        return Target.of(
            structure=self.structure, schedule=self.schedule, compression=self.compression, speedup=self.speedup,
            channel_fraction=self.channel_fraction, rounds=self.iterative.rounds, sparsity=self.sparsity,
        )

    @property
    def resolved_sparsity(self) -> float:
        """Language models: the fraction of prunable weights to prune (N:M: 1 - N/M)."""
        if self._is_nm:
            return catalog.parse_structure(self.structure).fixed_sparsity  # N:M: 1 - N/M
        return self.sparsity if self.sparsity is not None else DEFAULT_SPARSITY

    def resolved(self) -> dict[str, Any]:
        """An unset compression is hashed as the default it stands for where it is the target
        (null where speedup, channel_fraction, iterative rounds, N:M or a sparsity sets it)."""
        data = super().resolved()
        if self.target.kind == "compression":
            data["compression"] = self.resolved_compression
        return data
