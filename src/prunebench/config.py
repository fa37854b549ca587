"""Typed, frozen, validated specs. A run's canonical JSON (every resolved value and the spec
version) hashes to its id.

Everything that can change a result belongs to :class:`ExperimentSpec`. Where data lives, the
device and thread count belong to :class:`RunSettings`: they do not change the run id.

The schema knows names, not implementations: strategies, structures, schedules, retraining
modes, models and datasets are looked up in :mod:`prunebench.catalog` when a spec is validated.
Validators check values, never which fields were given, so a spec's ``model_dump`` validates
back to the same spec.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, ValidationInfo, field_validator, model_validator

from prunebench import catalog
from prunebench import latency_names
from prunebench.config_file import parse_value, read_config_file
from prunebench.errors import ConfigError, either
from prunebench.pruning.prunable import PrunablePolicy
from prunebench.target import DEFAULT_COMPRESSION, DEFAULT_SPARSITY, Target

RUN_ID_LENGTH = 16
# Hashed with every spec, so ids from different hashing rules can never meet. Raise it when the
# canonical JSON's rules change (not for a new key: a new key changes every id by itself).
# 1: every resolved value hashed (before it, keys added later were hashed only when set).
SPEC_VERSION = 1
CHANNEL = "channel"  # prune.structure for filter/channel pruning
MERGE_THRESHOLD = 0.45  # prune.merge_threshold: Kim et al. 2020's code, LeNet-300-100 (pruning.channels.merge)
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")
MAX_SEED = 2**31 - 1  # torch.manual_seed, NumPy and SQLite all take it, with room for per-stage offsets

# Values are taken as written: `true` is not an epoch count and "0.1" is not a learning rate.
# Strict types refuse both; an integer still fills a float field (as the same float, so ids keep).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # every float is finite

    def resolved(self) -> dict[str, Any]:
        """The spec as JSON data with every value spelled out, defaults included: what the id hashes.

        No key is left out for being at its default, so a changed default changes the ids of
        the specs it changes, and a cached result or dense checkpoint is never reused for a run
        it does not match.
        """
        data = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Spec):
                data[name] = value.resolved()
        return data

    def canonical_json(self) -> str:
        """The resolved spec and ``spec_version``, with sorted keys and no whitespace."""
        return json.dumps({**self.resolved(), "spec_version": SPEC_VERSION}, sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied, validated like any other spec (model_copy is not)."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:RUN_ID_LENGTH]


class TrainSpec(Spec):
    """One training recipe, used for dense training, fine-tuning and scratch training alike."""

    epochs: Int = Field(default=10, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Float = Field(default=0.1, gt=0)
    momentum: Float = Field(default=0.9, ge=0, lt=1)
    nesterov: Bool = False
    weight_decay: Float = Field(default=0.0, ge=0)
    batch_size: Int = Field(default=128, ge=1)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_milestones: tuple[Annotated[Int, Field(ge=1)], ...] = ()  # epochs at which `step` multiplies the LR by lr_gamma
    lr_gamma: Float = Field(default=0.1, gt=0)
    augment: Literal["none", "crop-flip"] = "none"  # crop-flip: 4-pixel padded random crop + flip, on device
    max_steps_per_epoch: Int | None = Field(default=None, ge=1)  # a quick check: at most this many batches per epoch
    # How the steps run; each can change the trained weights' last bits, so each is in the id.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype of the training forward; fp16 adds a grad scaler
    channels_last: Bool = False  # CNNs: model and image batches in channels-last memory format while training
    compile: Bool = False  # torch.compile the training forward

    @model_validator(mode="after")
    def momentum_only_for_sgd(self) -> TrainSpec:
        """Adam and AdamW take no momentum (their betas are torch's): a momentum set for them
        would be silently ignored, so it is refused."""
        if self.optimizer == "sgd":
            return self
        for name, value in (("momentum", self.momentum), ("nesterov", self.nesterov)):
            if value != type(self).model_fields[name].default:
                raise ValueError(
                    f"{name} {value!r} is an SGD setting that optimizer {self.optimizer!r} does not use "
                    f"(leave {name} out, or use optimizer: sgd)"
                )
        return self


def late_milestones(section: str, recipe: TrainSpec) -> None:
    """Refuse milestones of ``recipe`` (config section ``section``) at or after its last epoch."""
    late = [m for m in recipe.lr_milestones if m >= recipe.epochs]
    if late:
        allowed = f"1 to {recipe.epochs - 1}" if recipe.epochs > 1 else "none"
        raise ValueError(
            f"{section}.lr_milestones: {late} not below {section}.epochs ({recipe.epochs}), so never reached "
            f"(allowed: {allowed})"
        )


class FinetuneSpec(TrainSpec):
    """The ``finetune`` recipe: a training recipe whose own defaults are shorter and at a tenth
    of the LR (2 epochs at 0.01). A key left out of a ``finetune`` section, the section left out,
    and :func:`prunebench.finetune` all mean these defaults; the section owns them, so a spec
    dumped without its defaults reads back the same."""

    epochs: Int = Field(default=2, ge=0)
    lr: Float = Field(default=0.01, gt=0)


class RetrainSpec(Spec):
    """How the pruned network is trained after pruning (and between iterative rounds).

    The modes are registered objects (``prunebench.experiment.retrain``) that say which of
    the settings below they use and which schedules they accept:

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

    mode: str = "finetune"
    rewind_step: Int = Field(default=0, ge=0)
    rewind_epoch: Int = Field(default=0, ge=0)
    scratch_epochs: Int | None = Field(default=None, ge=1)

    @field_validator("mode")
    @classmethod
    def known_mode(cls, name: str) -> str:
        catalog.RETRAIN_MODES.get(name)
        return name

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The ``retrain.*`` keys a mode may use (every key but ``mode``)."""
        return tuple(name for name in cls.model_fields if name != "mode")


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


class CalibrationSpec(Spec):
    """Language models: the calibration sequences a data-driven strategy sees, drawn with the run's
    seed from the calibration split only (Wanda and SparseGPT use 128 sequences of 2048 tokens)."""

    n_samples: Int = Field(default=128, ge=1)
    seq_len: Int = Field(default=2048, ge=2)


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
    allocation: Literal["uniform", "owl"] = "uniform"  # sparsity across layers; owl: outlier-weighted
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
        return catalog.parse_structure(self.structure).kind == "nm"

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
            lm_only = [n for n, unit in units.items() if unit is None]
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
        kind = catalog.parse_structure(self.structure).kind
        if not strategy.prunes("classifier"):  # the model decides (ExperimentSpec)
            strategy.parse_options(self.options)
            return self
        if self.scope == "global":  # refused where the scores are layer-local (OBS)
            strategy.check_scope(self.scope, "classifier")
        if kind not in strategy.structures:
            if kind == CHANNEL:
                fitting = [n for n in registry.names() if CHANNEL in registry.get(n).structures]
                raise ValueError(
                    f"prune.strategy {self.strategy!r} scores single weights; structure 'channel' needs one of "
                    f"{', '.join(fitting)}"
                )
            if CHANNEL in strategy.structures:
                raise ValueError(f"prune.strategy {self.strategy!r} scores channels: it needs prune.structure 'channel'")
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
            structure = catalog.parse_structure(self.structure)
            return 1 - structure.n / structure.m
        return self.sparsity if self.sparsity is not None else DEFAULT_SPARSITY

    def resolved(self) -> dict[str, Any]:
        """An unset compression is hashed as the default it stands for where it is the target
        (null where speedup, channel_fraction, iterative rounds, N:M or a sparsity sets it)."""
        data = super().resolved()
        if self.target.kind == "compression":
            data["compression"] = self.resolved_compression
        return data


class EvaluationSpec(Spec):
    """Language models: perplexity over the evaluation split in windows of ``window`` tokens moved
    by ``stride`` (each token scored once, with at least ``window - stride`` tokens of context
    after the first window); ``tokens`` caps how many tokens of the split are scored, an equal
    run from the middle of each evaluation text (null: all of it)."""

    window: Int = Field(default=1024, ge=2)
    stride: Int = Field(default=512, ge=1)
    tokens: Int | None = Field(default=16384, ge=2)  # None: the whole evaluation split

    @model_validator(mode="after")
    def stride_within_window(self) -> EvaluationSpec:
        if self.stride > self.window:
            raise ValueError(f"evaluation.stride: {self.stride} is larger than evaluation.window ({self.window}): "
                             "tokens between windows would never be scored")
        return self


class RecoverySpec(Spec):
    """Language models: an optional short fine-tune after pruning with the mask held exactly
    (AdamW, constant LR); each step sees ``batch_tokens`` tokens as sequences of
    ``prune.calibration.seq_len`` drawn from the calibration split. 0 steps: no recovery."""

    steps: Int = Field(default=0, ge=0)
    lr: Float = Field(default=1e-5, gt=0)
    batch_tokens: Int = Field(default=8192, ge=2)


# Which keys apply to which kind of model; the others must keep their defaults (refused, not ignored).
CLASSIFIER_ONLY = {
    "": ("val_fraction", "train", "finetune", "retrain", "dense", "subset", "compress"),
    "prune": ("compression", "score_batches", "batch_size", "prunable", "schedule", "speedup",
              "channel_fraction", "iterative", "gradual", "merge", "merge_threshold", "shuffle"),
}
LM_ONLY = {"": ("evaluation", "recovery"), "prune": ("sparsity", "allocation", "calibration")}


LAYER_KINDS = ("conv", "linear")  # the layer kinds the compress stage shares weights of
MAX_BITS = 16


def bits_per_kind(section: str, value: Any) -> Any:
    """Refuse a layer kind other than conv/linear and a bit count outside 1..16, in one line."""
    if not isinstance(value, Mapping):
        return value
    for kind, bits in value.items():
        if kind not in LAYER_KINDS:
            raise ValueError(f"compress.{section}: unknown layer kind {kind!r} (allowed: {either(LAYER_KINDS)})")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise ValueError(f"compress.{section}.{kind}: {bits!r} is not a bit count from 1 to {MAX_BITS}")
    return value


class CompressSpec(Spec):
    """Deep Compression after fine-tuning (Han et al. 2016): trained quantization and Huffman coding.

    ``bits``: per layer kind, k-means with 2**bits shared weights per layer (section 3; paper:
    8 for conv, 5 for fc); a kind left out keeps its fp32 weights. ``index_bits``: the width of
    the relative sparse index (section 2: 8 for conv, 5 for fc). ``huffman``: Huffman-code the
    centroid indices and the index gaps (section 4), else store them at a fixed width.
    ``finetune_epochs``: centroid fine-tuning with the ``finetune`` recipe (``lr`` overrides its
    learning rate); 0 keeps the k-means centroids.
    """

    bits: dict[str, Int] = Field(default_factory=lambda: {"conv": 8, "linear": 5})
    index_bits: dict[str, Int] = Field(default_factory=lambda: {"conv": 8, "linear": 5})
    huffman: Bool = True
    finetune_epochs: Int = Field(default=1, ge=0)
    lr: Float | None = Field(default=None, gt=0)

    @field_validator("bits", mode="before")
    @classmethod
    def known_bits(cls, value: Any) -> Any:
        return bits_per_kind("bits", value)

    @field_validator("index_bits", mode="before")
    @classmethod
    def known_index_bits(cls, value: Any) -> Any:
        return bits_per_kind("index_bits", value)

    @model_validator(mode="after")
    def index_bits_for_every_kind(self) -> CompressSpec:
        missing = [kind for kind in self.bits if kind not in self.index_bits]
        if missing:
            raise ValueError(f"compress.index_bits: no width for {either(missing)}, which compress.bits quantizes")
        return self


SHA256_PATTERN = r"[0-9a-f]{64}"


class DenseSource(Spec):
    """Where the dense model comes from: trained by prunebench (``checkpoint`` unset), or a file.

    ``checkpoint`` is a state_dict file (``torch.save`` of tensors, read with
    ``weights_only=True``, or ``.safetensors``). Its SHA-256 is filled in when the spec is built
    and hashed into the dense spec, so the run id follows the file's content, not its path; a
    file that no longer has that digest is refused before a run (``dense.sha256``).
    """

    checkpoint: Path | None = None
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = None

    @model_validator(mode="before")
    @classmethod
    def digest_of_the_file(cls, data: Any) -> Any:
        """A relative path is taken from the current folder (workers may start elsewhere)."""
        if not isinstance(data, Mapping) or data.get("checkpoint") is None:
            return data
        path = Path(data["checkpoint"]).expanduser().absolute()
        if not path.is_file():
            raise ValueError(f"dense.checkpoint: {path} is not a file")
        data = {**data, "checkpoint": path}
        if data.get("sha256") is None:
            with path.open("rb") as file:
                data["sha256"] = hashlib.file_digest(file, "sha256").hexdigest()
        return data

    @model_validator(mode="after")
    def digest_needs_a_file(self) -> DenseSource:
        if self.sha256 is not None and self.checkpoint is None:
            raise ValueError("dense.sha256 pins the content of dense.checkpoint, which is not set")
        return self

    def resolved(self) -> dict[str, Any]:
        """The content, not where it lies: a moved or copied file is the same dense model."""
        return {"sha256": self.sha256}


# Retraining modes and schedules that need the dense model's own training run, which a
# checkpoint file does not carry (its initialization, the steps that led to it).
NEEDS_DENSE_TRAINING = {"retrain.mode": ("weight-rewind",), "prune.schedule": ("at-init",)}


class ExperimentSpec(Spec):
    """dense training -> pruning -> fine-tuning -> evaluation, fully described."""

    dataset: str
    model: str
    seed: Int = Field(default=0, ge=0, le=MAX_SEED)
    val_fraction: Float = Field(default=0.1, ge=0, lt=1)
    train: TrainSpec = Field(default_factory=TrainSpec)
    prune: PruneSpec = Field(default_factory=PruneSpec)
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    dense: DenseSource = Field(default_factory=DenseSource)
    subset: Int | None = Field(default=None, ge=1)  # a quick check: train on this many training examples
    compress: CompressSpec | None = None  # Deep Compression after fine-tuning; off when absent

    @model_validator(mode="after")
    def checkpoint_has_no_training_run(self) -> ExperimentSpec:
        if self.dense.checkpoint is None:
            return self
        for key, names in NEEDS_DENSE_TRAINING.items():
            section, field = key.split(".")
            value = getattr(getattr(self, section), field)
            if value in names:
                raise ValueError(
                    f"{key} {value!r} needs the dense model's own training run, which dense.checkpoint does not have "
                    f"(train the dense model with prunebench: leave dense.checkpoint out)"
                )
        return self

    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    recovery: RecoverySpec = Field(default_factory=RecoverySpec)

    @field_validator("finetune", mode="before")
    @classmethod
    def finetune_from_a_training_recipe(cls, value: Any) -> Any:
        """A TrainSpec object holds every value already: it is taken as it is."""
        if isinstance(value, TrainSpec) and not isinstance(value, FinetuneSpec):
            return value.model_dump()
        return value

    @model_validator(mode="before")
    @classmethod
    def lm_default_scope(cls, data: Any) -> Any:
        """A language model's ``prune.scope`` left out is its strategy's own default (Wanda: per
        output row), not the classifiers' ``global``; the filled-in value is then hashed as given."""
        if not isinstance(data, Mapping) or not isinstance(data.get("model"), str):
            return data
        prune = data.get("prune", {})
        if not isinstance(prune, Mapping) or "scope" in prune:
            return data
        try:
            lm = catalog.is_lm_model(data["model"])
            form = catalog.strategies().get(prune.get("strategy", "magnitude")).form("language_model")
        except (ValueError, KeyError):
            return data  # an unknown name: its own validator says so
        if not lm or form is None:
            return data
        return {**data, "prune": {**prune, "scope": form.default_scope}}

    @model_validator(mode="before")
    @classmethod
    def lm_default_sparsity(cls, data: Any) -> Any:
        """A language model's ``prune.sparsity`` left out is 0.5 (N:M: fixed by the structure, left
        unset), filled in here so the prune section itself holds the run's target (PruneSpec.target)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("model"), str):
            return data
        prune = data.get("prune", {})
        if isinstance(prune, PruneSpec):  # built in code: filled in like a mapping
            prune = prune.model_dump()
        if not isinstance(prune, Mapping) or prune.get("sparsity") is not None:
            return data
        try:
            if not catalog.is_lm_model(data["model"]):
                return data
            if catalog.parse_structure(prune.get("structure", _default(PruneSpec, "structure"))).kind == "nm":
                return data
        except (ValueError, TypeError, AttributeError):
            return data  # an unknown model or structure: its own validator says so
        return {**data, "prune": {**prune, "sparsity": DEFAULT_SPARSITY}}

    @property
    def target(self) -> Target:
        """What the run aims at: its prune section's target (see :mod:`prunebench.target`)."""
        return self.prune.target

    @property
    def is_lm(self) -> bool:
        """Whether the model is a causal language model (asked of the model names' owners)."""
        return catalog.is_lm_model(self.model)

    @model_validator(mode="after")
    def keys_apply_to_the_model(self) -> ExperimentSpec:
        """A key that does not apply to the model's kind is refused, never silently ignored."""
        lm = self.is_lm
        if lm != catalog.is_text_dataset(self.dataset):
            wanted = "a text corpus (e.g. shakespeare, text:<path>)" if lm else "an image or tabular dataset"
            kind = "a causal language model" if lm else "a classifier"
            raise ValueError(f"dataset: {self.dataset!r} does not fit model {self.model!r}: {kind} needs {wanted}")
        foreign, kind = (CLASSIFIER_ONLY, "classifiers") if lm else (LM_ONLY, "causal language models")
        for section, keys in foreign.items():
            owner = getattr(self, section) if section else self
            for key in keys:
                if getattr(owner, key) != _default(type(owner), key):
                    name = f"{section}.{key}" if section else key
                    raise ValueError(f"{name}: only applies to {kind}, not to model {self.model!r}: leave it out")
        if lm:
            self.lm_rules()
        elif not catalog.strategies().get(self.prune.strategy).prunes("classifier"):
            registry = catalog.strategies()
            raise ValueError(
                f"prune.strategy {self.prune.strategy!r} prunes language models only (e.g. model smollm2-135m); "
                f"classifiers are pruned by {', '.join(n for n in registry.names() if registry.get(n).prunes('classifier'))}"
            )
        elif self.prune.scope == "row":
            raise ValueError(f"prune.scope 'row' (per output row) applies to causal language models, not to model "
                             f"{self.model!r} (allowed: 'global' or 'layer')")
        return self

    def lm_rules(self) -> None:
        """The strategy says whether it prunes language models and with which scopes."""
        prune = self.prune
        form = catalog.strategies().get(prune.strategy).form("language_model")
        if form is None:
            able = [n for n in catalog.strategies().names() if catalog.strategies().get(n).prunes("language_model")]
            raise ValueError(f"prune.strategy {prune.strategy!r} does not prune language models (allowed: {', '.join(able)})")
        scopes = form.scopes
        if prune.scope not in scopes:
            raise ValueError(
                f"prune.scope {prune.scope!r} is not one {prune.strategy} prunes language models with (allowed: {either(scopes)})"
            )
        if prune.sparsity is not None and prune._is_nm:
            raise ValueError("prune.sparsity: prune.structure N:M fixes the sparsity at 1 - N/M: leave prune.sparsity out")
        if catalog.parse_structure(prune.structure).kind not in ("unstructured", "nm"):
            raise ValueError(f"prune.structure {prune.structure!r}: language models are pruned 'unstructured' or N:M (e.g. '2:4')")
        if prune.allocation == "owl" and prune._is_nm:
            raise ValueError("prune.allocation 'owl' spreads an unstructured sparsity across layers; N:M is the same in every layer")

    def resolved(self) -> dict[str, Any]:
        """Each model kind hashes its own keys, every one of them: a classifier's id holds no
        language-model key, and a language model's no training recipe it never uses."""
        return self._applicable(super().resolved())

    def recorded(self) -> dict[str, Any]:
        """The spec as results record it: ``model_dump`` without the keys of the other model kind
        (a language model's target spelled out), so it validates back to the same spec."""
        return self._applicable(self.model_dump(mode="json"))

    def _applicable(self, data: dict[str, Any]) -> dict[str, Any]:
        for section, keys in (LM_ONLY if not self.is_lm else CLASSIFIER_ONLY).items():
            owner = data[section] if section else data
            for key in keys:
                owner.pop(key, None)
        return data

    @model_validator(mode="after")
    def consistent_retraining(self) -> ExperimentSpec:
        """Refuse a retraining mode its schedule cannot use, and settings the mode does not use."""
        mode = catalog.RETRAIN_MODES.get(self.retrain.mode)
        schedule = catalog.SCHEDULES.get(self.prune.schedule)
        modes = [catalog.RETRAIN_MODES.get(name) for name in catalog.RETRAIN_MODES]
        if schedule.name not in mode.schedules:
            allowed = ", ".join(m.name for m in modes if schedule.name in m.schedules)
            raise ValueError(
                f"retrain.mode {mode.name!r} does not apply to prune.schedule {schedule.name!r} (allowed: {allowed})"
            )
        used = schedule.retrain_settings(mode)
        for key in RetrainSpec.settings():
            if key not in used and getattr(self.retrain, key) != _default(RetrainSpec, key):
                users = [m.name for m in modes if schedule.name in m.schedules and key in schedule.retrain_settings(m)]
                raise ValueError(f"retrain.{key} is only used by retrain.mode {either(users)}, not {mode.name!r}")
        mode.validate(self)
        return self

    @model_validator(mode="after")
    def milestones_within_epochs(self) -> ExperimentSpec:
        """A milestone at or past a recipe's last epoch would never lower its LR: refused, not ignored.

        Checked here, on the recipes as written, not on TrainSpec: a retraining mode may derive a
        shorter copy of ``train`` (``retrain.scratch_epochs``) that keeps the dense milestones.
        """
        for section in ("train", "finetune"):
            late_milestones(section, getattr(self, section))
        return self

    @field_validator("dataset")
    @classmethod
    def known_dataset(cls, name: str) -> str:
        if not catalog.is_text_dataset(name):
            if name not in catalog.datasets():
                text = [n for n in catalog.text_datasets().names() if not n.endswith(":")]
                raise ValueError(f"{catalog.datasets().unknown_message(name)[:-1]}; text: {', '.join(text)}, text:<path>)")
        return name

    @field_validator("model")
    @classmethod
    def known_model(cls, name: str) -> str:
        if not catalog.is_lm_model(name):
            if name not in catalog.models():
                lms = catalog.lm_models().names()
                raise ValueError(
                    f"{catalog.models().unknown_message(name)[:-1]}; language models: {', '.join(lms)}, hf:<dir-or-id>)"
                )
        return name

    @property
    def run_id(self) -> str:
        return self.content_hash()

    def dense_spec(self) -> DenseSpec | LMDenseSpec:
        """What the dense figures depend on; every strategy of a seed prunes the same weights.

        A language model's dense model is the pretrained one: no seed, no training, only the
        model, the text and the evaluation window (the weights' SHA-256 is checked where they load).
        """
        if self.is_lm:
            return LMDenseSpec(dataset=self.dataset, model=self.model, evaluation=self.evaluation)
        return DenseSpec(
            dataset=self.dataset, model=self.model, seed=self.seed,
            val_fraction=self.val_fraction, train=self.train, checkpoint_sha256=self.dense.sha256,
            subset=self.subset,
        )


class DenseSpec(Spec):
    """What determines the dense checkpoint: every strategy of a seed prunes the same one."""

    dataset: str
    model: str
    seed: Int = Field(ge=0, le=MAX_SEED)
    val_fraction: Float = Field(ge=0, lt=1)
    train: TrainSpec
    checkpoint_sha256: Annotated[str, Field(pattern=SHA256_PATTERN)] | None = None  # dense.checkpoint's content
    subset: Int | None = Field(default=None, ge=1)


class LMDenseSpec(Spec):
    """What determines a language model's dense perplexity: the pretrained model on the evaluation split."""

    dataset: str
    model: str
    evaluation: EvaluationSpec

    @property
    def seed(self) -> None:
        return None


# torch threads: more than any CPU has; beyond it OpenMP aborts the process instead of raising.
# A fixed bound, not one relative to os.cpu_count(): a config valid here is valid on every machine.
MAX_THREADS = 1024


MAX_LATENCY_BATCH = 65_536  # a deployed batch; 10^8 inputs used to fail only once the run had trained


class RunSettings(Spec):
    """Where and how to run; none of it changes the results, so none of it is in the run id."""

    data_dir: Path | None = None
    download: Bool = True
    # Image folders (and datasets whose source streams): decode each batch from the files in
    # `data_workers` processes instead of reading them whole into memory. The same batches
    # either way (tested bit for bit), so neither is in the run id.
    streaming: Bool = False
    data_workers: Int = Field(default=2, ge=0, le=MAX_THREADS)
    device: str = "cpu"  # cpu, cuda, cuda:N or mps; checked against the installed torch before a run
    threads: Int | None = Field(default=None, ge=1, le=MAX_THREADS)
    latency: Bool = False  # time the dense and the pruned (compacted, for channels) model per run
    latency_batch_size: Int = Field(default=64, ge=1, le=MAX_LATENCY_BATCH)  # larger would fail after training, out of memory
    latency_repeats: Int = Field(default=30, ge=2)
    # deployment forms timed (prunebench.models.deploy): eager and the BatchNorm-folded form a deployment runs
    latency_forms: tuple[str, ...] = (latency_names.EAGER, latency_names.FOLDED)
    latency_runtimes: tuple[str, ...] = (latency_names.TORCH,)  # torch (eager), torch-compile, onnxruntime
    plugins: tuple[str, ...] = ()  # modules imported before validation, in every worker (prunebench.plugins)

    @field_validator("data_dir")
    @classmethod
    def data_dir_is_a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a directory")
        return value

    @field_validator("latency_forms", "latency_runtimes")
    @classmethod
    def known_latency_names(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        allowed = latency_names.LATENCY_FORMS if info.field_name == "latency_forms" else latency_names.LATENCY_RUNTIMES
        unknown = [name for name in value if name not in allowed]
        if unknown or not value or len(set(value)) != len(value):
            problem = f"unknown {unknown[0]!r}" if unknown else f"got {list(value)}"
            raise ValueError(f"{problem} (allowed: one or more of {', '.join(allowed)}, each once)")
        return value

    @field_validator("device")
    @classmethod
    def device_kind(cls, value: str) -> str:
        """The form only; whether this machine has it is checked before a run (runner.preflight)."""
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a device prunebench runs on (allowed: cpu, cuda, cuda:N, mps)")
        return value


SETTINGS_KEYS = frozenset(RunSettings.model_fields)


def _default(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].get_default(call_default_factory=True)



def key_suggestion(loc: Sequence[int | str]) -> str:
    """'; did you mean X?' for an unknown key, from the keys of the section it was written in."""
    model: type[BaseModel] = ExperimentSpec
    names = [*ExperimentSpec.model_fields, *SETTINGS_KEYS]
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        section = next((t for t in (field.annotation, *get_args(field.annotation))
                        if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if section is None:
            return ""
        model, names = section, list(section.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f"; did you mean {'.'.join(map(str, [*loc[:-1], close[0]]))}?" if close else ""


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, 'field.path: message', without pydantic's boilerplate."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + key_suggestion(error["loc"])
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and error["type"] not in ("value_error",):
            message = f"{message} (got {error['input']!r})"
        # a validator's message that names its exact key (prune.options.x) speaks for itself
        names_key = re.match(r"[a-z_]+(\.[a-z0-9_]+)+\b", message) is not None
        names_key = names_key and (where == "config" or re.match(re.escape(where) + r"[.:]", message) is not None)
        names_key = names_key or (where == "config" and message.split(":")[0] in ExperimentSpec.model_fields)
        lines.append(message if names_key else f"{where}: {message}")
    return "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``prune.compression=16`` -> (["prune", "compression"], 16); values parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. prune.compression=16)")
    return key.split("."), parse_value(raw, f"override {key}")  # the key, not a value that may be huge


def set_dotted(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """``set_dotted(d, ["prune", "compression"], 16)`` sets ``d["prune"]["compression"]``."""
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


SWEEP_SECTION = "sweep"  # its keys are dotted spec keys (prunebench.plan.sweep)


def deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # plain YAML data only


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Overrides set dotted keys; under ``sweep`` the rest of the key is one dotted sweep key
    (``sweep.prune.compression=[2,8]`` sets the sweep's ``prune.compression`` list)."""
    merged = deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] == SWEEP_SECTION and len(path) > 2:
            if isinstance(merged.get(SWEEP_SECTION), list):
                raise ConfigError(f"override {text!r}: this sweep is a list of grids; override it whole (sweep=[...])")
            path = [SWEEP_SECTION, ".".join(path[1:])]
        set_dotted(merged, path, value)
    return merged


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML config as a plain mapping, with ``key=value`` overrides applied."""
    return apply_overrides(read_config_file(Path(path)), overrides)


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
        settings = settings.replace(data_dir=Path(os.environ["PRUNEBENCH_DATA"]))
    return spec, settings


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ExperimentSpec, RunSettings]:
    """Read a single-run YAML config, apply ``key=value`` overrides, validate."""
    return build_specs(read_config(path, overrides))
