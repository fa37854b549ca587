"""The training recipes (``train``, ``finetune``) and how a pruned network is retrained (``retrain``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from prunebench import catalog
from prunebench.spec.base import Bool, Float, Int, Spec


class TrainSpec(Spec):
    """One training recipe, used for dense training, fine-tuning and scratch training alike."""

    epochs: Int = Field(default=10, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: Float = Field(default=0.1, gt=0)
    momentum: Float = Field(default=0.9, ge=0, lt=1)
    nesterov: Bool = False
    weight_decay: Float = Field(default=0.0, ge=0)
    batch_size: Int = Field(default=128, ge=1)
    # onecycle (Smith & Topin 2019, torch's OneCycleLR with linear annealing): per step, up from lr/25
    # to lr over warmup_fraction of all steps, then linearly down to lr/25e4 at the last step.
    lr_schedule: Literal["constant", "cosine", "step", "onecycle"] = "constant"
    lr_milestones: tuple[Annotated[Int, Field(ge=1)], ...] = ()  # epochs at which `step` multiplies the LR by lr_gamma
    lr_gamma: Float = Field(default=0.1, gt=0)
    warmup_fraction: Float = Field(default=0.3, gt=0, lt=1)  # onecycle: torch's pct_start default
    label_smoothing: Float = Field(default=0.0, ge=0, lt=1)  # classifiers' cross-entropy (Szegedy et al. 2016)
    # An exponential moving average of the weights and buffers (Polyak averaging), updated after every
    # step and copied into the model when training ends; None: the last step's weights are the result.
    ema_decay: Float | None = Field(default=None, gt=0, lt=1)
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

    @model_validator(mode="after")
    def warmup_only_for_onecycle(self) -> TrainSpec:
        """A warmup fraction only the onecycle schedule reads is refused for the others, not ignored."""
        default = type(self).model_fields["warmup_fraction"].default
        if self.lr_schedule != "onecycle" and self.warmup_fraction != default:
            raise ValueError(f"warmup_fraction {self.warmup_fraction!r} is only used by lr_schedule 'onecycle', "
                             f"not {self.lr_schedule!r} (leave warmup_fraction out)")
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
