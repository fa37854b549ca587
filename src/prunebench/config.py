"""Typed, frozen, validated specs. A run's canonical JSON (defaults left out) hashes to its id.

Everything that can change a result belongs to :class:`ExperimentSpec`. Where data lives, the
device and thread count belong to :class:`RunSettings`: they do not change the run id.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prunebench.data import DATASETS
from prunebench.errors import ConfigError
from prunebench.models import MODELS
from prunebench.pruning.prunable import PrunablePolicy
from prunebench.pruning.channels import CHANNEL_SCORERS
from prunebench.pruning.scores import STRATEGIES
from prunebench.pruning.structures import parse_structure

RUN_ID_LENGTH = 16
CHANNEL = "channel"  # prune.structure for filter/channel pruning


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, defaults left out: adding a defaulted field keeps ids."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:RUN_ID_LENGTH]


class TrainSpec(Spec):
    """One training recipe, used for dense training, fine-tuning and scratch training alike."""

    epochs: int = Field(default=10, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.1, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=128, ge=1)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_milestones: tuple[int, ...] = ()  # epochs at which `step` multiplies the LR by lr_gamma
    lr_gamma: float = Field(default=0.1, gt=0)
    augment: Literal["none", "crop-flip"] = "none"  # crop-flip: 4-pixel padded random crop + flip, on device


def finetune_default() -> TrainSpec:
    return TrainSpec(epochs=2, lr=0.01)


RetrainMode = Literal["finetune", "lr-rewind", "weight-rewind", "reinit", "scratch", "scratch-e", "scratch-b"]

# Which retraining modes each schedule accepts (see docs/methods.md for why the others are refused).
ALLOWED_MODES: dict[str, tuple[str, ...]] = {
    "one-shot": ("finetune", "lr-rewind", "weight-rewind", "reinit", "scratch", "scratch-e", "scratch-b"),
    "iterative": ("finetune", "lr-rewind", "weight-rewind", "reinit", "scratch", "scratch-e", "scratch-b"),
    "gradual": ("finetune",),
    "at-init": ("finetune", "reinit"),
}


class RetrainSpec(Spec):
    """How the pruned network is trained after pruning (and between iterative rounds).

    - ``finetune``: continue from the pruned weights with the ``finetune`` recipe.
    - ``lr-rewind``: continue from the pruned weights with the ``train`` recipe's LR schedule
      from epoch ``rewind_epoch`` to its end (Renda et al. 2020).
    - ``weight-rewind``: reset the survivors to their values at dense-training step
      ``rewind_step`` and train with the ``train`` recipe from the epoch holding that step
      (Frankle et al. 2020); ``rewind_step`` 0 is the lottery ticket (Frankle & Carbin 2019).
    - ``reinit``: same mask, a fresh random initialization, the ``train`` recipe.
    - ``scratch``: same mask, a fresh random initialization, the ``train`` recipe for
      ``scratch_epochs`` epochs (unset: ``train.epochs``, i.e. Scratch-E).
    - ``scratch-e`` / ``scratch-b`` (Liu et al. 2019): the pruned architecture from a fresh
      random initialization, trained with the ``train`` recipe for the dense model's epochs
      (E), or for the same compute, epochs x dense MACs / pruned MACs (B).
    """

    mode: RetrainMode = "finetune"
    rewind_step: int = Field(default=0, ge=0)
    rewind_epoch: int = Field(default=0, ge=0)
    scratch_epochs: int | None = Field(default=None, ge=1)


class IterativeSpec(Spec):
    """Rounds of prune -> retrain, each removing ``rate`` of what remains (schedule ``iterative``).

    With ``rounds`` unset, rounds continue until ``prune.compression`` (the last round stops
    exactly there). With ``rounds`` set, exactly that many rounds run and ``prune.compression``
    must be left out; ``layer_rates`` (glob over parameter names -> rate, scope ``layer`` only)
    then gives some layers their own rate, e.g. ``{"5.weight": 0.1}`` for an output layer.
    """

    rate: float = Field(default=0.2, gt=0, lt=1)
    rounds: int | None = Field(default=None, ge=1)
    layer_rates: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=dict)


class GradualSpec(Spec):
    """Zhu & Gupta's cubic schedule during fine-tuning (schedule ``gradual``), in optimizer steps.

    s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with t0 = ``start_step``, dt = ``frequency``,
    n = (``end_step`` - t0) // dt and s_f from ``prune.compression``. ``end_step`` unset means
    three quarters of the fine-tuning steps, leaving the last quarter to recover.
    """

    initial_sparsity: float = Field(default=0.0, ge=0, lt=1)
    start_step: int = Field(default=0, ge=0)
    end_step: int | None = Field(default=None, ge=1)
    frequency: int = Field(default=100, ge=1)


class PruneSpec(Spec):
    strategy: str = "magnitude"
    scope: Literal["global", "layer"] = "global"
    compression: float = Field(default=4.0, gt=1)  # whole-model total / nonzero parameters
    score_batches: int = Field(default=8, ge=1)  # training batches shown to data-driven scorers
    batch_size: int = Field(default=128, ge=1)  # size of each of those batches
    options: dict[str, Any] = Field(default_factory=dict)  # the strategy's own hyperparameters
    prunable: PrunablePolicy = PrunablePolicy()
    schedule: Literal["one-shot", "iterative", "gradual", "at-init"] = "one-shot"
    structure: str = "unstructured"  # or "N:M" (e.g. "2:4"), "block:RxC" (e.g. "block:4x4"), "channel"
    speedup: float | None = Field(default=None, gt=1)  # channel pruning: a MAC-reduction target
    channel_fraction: float | None = Field(default=None, gt=0, lt=1)  # channel pruning: channels to remove
    iterative: IterativeSpec = IterativeSpec()
    gradual: GradualSpec = GradualSpec()

    @field_validator("structure", mode="before")
    @classmethod
    def known_structure(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 2:4 as the base-60 number 124
            raise ValueError(
                f"got the number {value}: quote N:M, e.g. '2:4' in YAML, prune.structure=\"'2:4'\" as an override"
            )
        if isinstance(value, str) and value != CHANNEL:
            parse_structure(value)
        return value

    @model_validator(mode="after")
    def consistent_schedule(self) -> PruneSpec:
        """Settings of one schedule must not be given to another; N:M fixes its own sparsity."""
        fields = self.model_fields_set
        if "iterative" in fields and self.iterative != IterativeSpec() and self.schedule != "iterative":
            raise ValueError(f"prune.iterative is only used by prune.schedule 'iterative', not {self.schedule!r}")
        if "gradual" in fields and self.gradual != GradualSpec() and self.schedule != "gradual":
            raise ValueError(f"prune.gradual is only used by prune.schedule 'gradual', not {self.schedule!r}")
        if self.iterative.rounds is not None and "compression" in fields:
            raise ValueError("prune.iterative.rounds and prune.compression both set the target: give one")
        if self.iterative.layer_rates and self.iterative.rounds is None:
            raise ValueError("prune.iterative.layer_rates needs prune.iterative.rounds (the target is then the rounds)")
        if self.iterative.layer_rates and self.scope != "layer":
            raise ValueError("prune.iterative.layer_rates needs prune.scope 'layer'")
        g = self.gradual
        if g.end_step is not None and g.end_step - g.start_step < g.frequency:
            raise ValueError("prune.gradual.end_step - prune.gradual.start_step must be at least prune.gradual.frequency")
        targets = [name for name in ("speedup", "channel_fraction") if getattr(self, name) is not None]
        if targets and self.structure != CHANNEL:
            raise ValueError(f"prune.{targets[0]} is a channel-pruning target: it needs prune.structure 'channel'")
        if len(targets) + ("compression" in fields) > 1:
            raise ValueError("prune.compression, prune.speedup and prune.channel_fraction each set the target: give one")
        if self.structure == CHANNEL:
            if self.schedule != "one-shot":
                raise ValueError(f"prune.structure 'channel' needs prune.schedule 'one-shot', not {self.schedule!r}")
            return self
        structure = parse_structure(self.structure)
        if structure.kind == "nm":
            if self.schedule not in ("one-shot", "at-init"):
                raise ValueError(f"prune.structure N:M needs prune.schedule 'one-shot' or 'at-init', not {self.schedule!r}")
            if "compression" in fields:
                raise ValueError("prune.structure N:M fixes the sparsity at 1 - N/M: leave prune.compression out")
        return self

    @field_validator("strategy")
    @classmethod
    def known_strategy(cls, name: str) -> str:
        if name not in STRATEGIES and name not in CHANNEL_SCORERS:
            close = difflib.get_close_matches(name, [*STRATEGIES.names(), *CHANNEL_SCORERS.names()], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown strategy {name!r}{hint} (known: {', '.join(STRATEGIES.names())}; with structure "
                f"'channel': {', '.join(CHANNEL_SCORERS.names())})"
            )
        return name

    @model_validator(mode="after")
    def strategy_fits_structure(self) -> PruneSpec:
        """Weight strategies score weights; channel strategies (structure 'channel') score channels."""
        if self.structure == CHANNEL:
            if self.strategy not in CHANNEL_SCORERS:
                raise ValueError(
                    f"prune.strategy {self.strategy!r} scores single weights; structure 'channel' needs one of "
                    f"{', '.join(CHANNEL_SCORERS.names())}"
                )
            if self.options:
                raise ValueError("prune.options: channel strategies take no options")
        elif self.strategy not in STRATEGIES:
            raise ValueError(f"prune.strategy {self.strategy!r} scores channels: it needs prune.structure 'channel'")
        else:
            STRATEGIES.get(self.strategy).parse_options(self.options)
        return self

    @property
    def target(self) -> tuple[str, float]:
        """(kind, value): ('compression', 8.0), or for channel pruning ('speedup', 2.0) etc."""
        if self.speedup is not None:
            return "speedup", self.speedup
        if self.channel_fraction is not None:
            return "channel_fraction", self.channel_fraction
        return "compression", self.compression


class ExperimentSpec(Spec):
    """dense training -> pruning -> fine-tuning -> evaluation, fully described."""

    dataset: str
    model: str
    seed: int = 0
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    train: TrainSpec = TrainSpec()
    prune: PruneSpec = PruneSpec()
    finetune: TrainSpec = Field(default_factory=finetune_default)
    retrain: RetrainSpec = RetrainSpec()

    @model_validator(mode="after")
    def consistent_retraining(self) -> ExperimentSpec:
        """Refuse a retraining mode its schedule cannot use, and settings of another mode."""
        mode, schedule = self.retrain.mode, self.prune.schedule
        if mode not in ALLOWED_MODES[schedule]:
            allowed = ", ".join(ALLOWED_MODES[schedule])
            raise ValueError(f"retrain.mode {mode!r} does not apply to prune.schedule {schedule!r} (allowed: {allowed})")
        rewinds_weights = mode == "weight-rewind" or (schedule == "iterative" and mode in ("reinit", "scratch"))
        if self.retrain.rewind_step and not rewinds_weights:
            raise ValueError(f"retrain.rewind_step is only used by retrain.mode 'weight-rewind', not {mode!r}")
        if self.retrain.rewind_epoch and mode != "lr-rewind":
            raise ValueError(f"retrain.rewind_epoch is only used by retrain.mode 'lr-rewind', not {mode!r}")
        if mode == "lr-rewind" and self.retrain.rewind_epoch >= self.train.epochs:
            raise ValueError(f"retrain.rewind_epoch must be below train.epochs ({self.train.epochs})")
        if self.retrain.scratch_epochs is not None and mode != "scratch":
            raise ValueError(f"retrain.scratch_epochs is only used by retrain.mode 'scratch', not {mode!r}")
        return self

    @field_validator("dataset")
    @classmethod
    def known_dataset(cls, name: str) -> str:
        DATASETS.get(name)
        return name

    @field_validator("model")
    @classmethod
    def known_model(cls, name: str) -> str:
        MODELS.get(name)
        return name

    @property
    def run_id(self) -> str:
        return self.content_hash()

    def dense_spec(self) -> DenseSpec:
        return DenseSpec(
            dataset=self.dataset, model=self.model, seed=self.seed,
            val_fraction=self.val_fraction, train=self.train,
        )


class DenseSpec(Spec):
    """What determines the dense checkpoint: every strategy of a seed prunes the same one."""

    dataset: str
    model: str
    seed: int
    val_fraction: float
    train: TrainSpec


# torch threads: more than any CPU has; beyond it OpenMP aborts the process instead of raising.
# A fixed bound, not one relative to os.cpu_count(): a config valid here is valid on every machine.
MAX_THREADS = 1024


class RunSettings(Spec):
    """Where and how to run; none of it changes the results, so none of it is in the run id."""

    data_dir: Path | None = None
    download: bool = True
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1, le=MAX_THREADS)
    latency: bool = False  # time the dense and the pruned (compacted, for channels) model per run
    latency_batch_size: int = Field(default=64, ge=1)
    latency_repeats: int = Field(default=30, ge=2)


SETTINGS_KEYS = frozenset(RunSettings.model_fields)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, 'field.path: message', without pydantic's boilerplate."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and error["type"] not in ("value_error",):
            message = f"{message} (got {error['input']!r})"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``prune.compression=16`` -> (["prune", "compression"], 16); values parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. prune.compression=16)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def set_dotted(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """``set_dotted(d, ["prune", "compression"], 16)`` sets ``d["prune"]["compression"]``."""
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # plain YAML data only


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    merged = deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(merged, path, value)
    return merged


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML config as a plain mapping, with ``key=value`` overrides applied."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return apply_overrides(data, overrides)


def build_specs(data: Mapping[str, Any]) -> tuple[ExperimentSpec, RunSettings]:
    """Split a config mapping into the hashed spec and the unhashed settings, validating both."""
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a mapping of keys to values")
    settings_data = {k: v for k, v in data.items() if k in SETTINGS_KEYS}
    spec_data = {k: v for k, v in data.items() if k not in SETTINGS_KEYS}
    try:
        settings = RunSettings(**settings_data)
        spec = ExperimentSpec(**spec_data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    if settings.data_dir is None and os.environ.get("PRUNEBENCH_DATA"):
        settings = settings.model_copy(update={"data_dir": Path(os.environ["PRUNEBENCH_DATA"])})
    return spec, settings


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ExperimentSpec, RunSettings]:
    """Read a single-run YAML config, apply ``key=value`` overrides, validate."""
    return build_specs(read_config(path, overrides))
