"""The whole run: :class:`ExperimentSpec`, its sections, and which keys apply to which kind of model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from prunebench import catalog
from prunebench.errors import either
from prunebench.spec.base import MAX_SEED, Float, Int, Spec, _default
from prunebench.spec.compress import CompressSpec
from prunebench.spec.dense import NEEDS_DENSE_TRAINING, DenseSource, DenseSpec, LMDenseSpec
from prunebench.spec.language_model import EvaluationSpec, RecoverySpec
from prunebench.spec.prune import PruneSpec
from prunebench.spec.training import FinetuneSpec, RetrainSpec, TrainSpec, late_milestones
from prunebench.target import DEFAULT_SPARSITY, Target

# Which keys apply to which kind of model; the others must keep their defaults (refused, not ignored).
CLASSIFIER_ONLY = {
    "": ("val_fraction", "train", "finetune", "retrain", "dense", "subset", "compress"),
    "prune": ("compression", "score_batches", "batch_size", "prunable", "schedule", "speedup",
              "channel_fraction", "iterative", "gradual", "merge", "merge_threshold", "shuffle"),
}
LM_ONLY = {"": ("evaluation", "recovery"), "prune": ("sparsity", "allocation", "calibration")}


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
            if catalog.parse_structure(prune.get("structure", _default(PruneSpec, "structure"))).fixed_sparsity is not None:
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
        if not catalog.parse_structure(prune.structure).language_model:
            raise ValueError(f"prune.structure {prune.structure!r}: language models are pruned {catalog.lm_structures()}")
        if catalog.parse_structure(prune.structure).kind not in form.structures:
            raise ValueError(f"prune.strategy {prune.strategy!r} does not prune language models under prune.structure "
                             f"{prune.structure!r} (it prunes: {', '.join(form.structures)})")
        catalog.parse_allocation(prune.allocation).check(fixed_sparsity=prune._is_nm, scope=prune.scope)

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
