"""The sections only a causal language model reads: calibration, evaluation and recovery."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from prunebench.errors import either
from prunebench.spec.base import Int, Float, Spec

# LoRA's defaults: rank 8 and alpha 16 as LLM-Pruner's recovery (Ma et al. 2023), on every Linear
# of a Llama-layout decoder block (the layers prunebench prunes).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# The zero-shot tasks (prunebench.data.wiki_tasks.TASKS; named here so a spec validates without
# reading the task module, and test_lm_tasks checks the two lists agree).
TASK_NAMES = ("closed_book", "open_book", "topic", "cloze")


class CalibrationSpec(Spec):
    """Language models: the calibration sequences a data-driven strategy sees, drawn with the run's
    seed from the calibration split only (Wanda and SparseGPT use 128 sequences of 2048 tokens)."""

    n_samples: Int = Field(default=128, ge=1)
    seq_len: Int = Field(default=2048, ge=2)


class EvaluationSpec(Spec):
    """Language models: perplexity over the evaluation split (:mod:`prunebench.metrics.perplexity`).

    ``protocol: papers`` (the default) is Wanda's and SparseGPT's: the evaluation texts joined
    with blank lines, disjoint windows of ``window`` tokens, the tail dropped; ``tokens`` keeps
    ``tokens // window`` of those windows, evenly spaced (null: all of them). ``stride`` is the
    window's own length there and may only be written as that.

    ``protocol: sliding``: windows of ``window`` tokens moved by ``stride`` (each token scored
    once, with at least ``window - stride`` tokens of context after the first window; left out:
    half the window); ``tokens`` caps how many tokens of the split are scored, an equal run from
    the middle of each evaluation text (null: all of it)."""

    protocol: Literal["papers", "sliding"] = "papers"
    window: Int = Field(default=1024, ge=2)
    stride: Int | None = Field(default=None, ge=1)  # None: the protocol's own (papers: window; sliding: window // 2)
    tokens: Int | None = Field(default=16384, ge=2)  # None: the whole evaluation split
    # Zero-shot Wikipedia tasks scored on the model a run ends with (and the dense model), the
    # first ``task_items`` items of each (null: every item). None listed: none scored.
    tasks: tuple[str, ...] = ()
    task_items: Int | None = Field(default=500, ge=1)

    @field_validator("tasks", mode="before")
    @classmethod
    def a_list(cls, value: object) -> object:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"evaluation.tasks: a list of task names (of {either(TASK_NAMES)}), got {value!r}")
        return value

    @field_validator("tasks")
    @classmethod
    def known_tasks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in TASK_NAMES:
                raise ValueError(f"evaluation.tasks: unknown task {name!r}; choose from {either(TASK_NAMES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"evaluation.tasks: a task is listed twice in {list(value)}")
        return value

    @model_validator(mode="after")
    def stride_and_tokens_fit_the_protocol(self) -> EvaluationSpec:
        if self.protocol == "papers":
            if self.stride is not None and self.stride != self.window:
                raise ValueError(f"evaluation.stride: {self.stride} with protocol 'papers', whose windows are disjoint "
                                 f"(stride = window = {self.window}); use protocol 'sliding' for overlapping windows")
            if self.tokens is not None and self.tokens < self.window:
                raise ValueError(f"evaluation.tokens: {self.tokens} is less than one window of evaluation.window "
                                 f"({self.window}) tokens, which protocol 'papers' scores whole")
            stride = self.window
        else:
            stride = self.window // 2 if self.stride is None else self.stride
            if stride > self.window:
                raise ValueError(f"evaluation.stride: {stride} is larger than evaluation.window ({self.window}): "
                                 "tokens between windows would never be scored")
        object.__setattr__(self, "stride", stride)  # the resolved stride is what the run id hashes
        return self

    @property
    def resolved_stride(self) -> int:
        assert self.stride is not None  # set by the validator
        return self.stride


class RecoverySpec(Spec):
    """Language models: an optional short fine-tune after pruning with the mask held exactly
    (AdamW, constant LR); each step sees ``batch_tokens`` tokens as sequences of
    ``prune.calibration.seq_len`` drawn from the calibration split. 0 steps: no recovery.

    ``method``: ``full`` trains every weight; ``lora`` trains low-rank adapters (``rank``,
    ``alpha``) on the pruned layers named by ``target_modules`` (suffixes of module names), the
    base weights frozen, and merges them into the weights after (experiment/lora.py)."""

    method: Literal["full", "lora"] = "full"
    steps: Int = Field(default=0, ge=0)
    lr: Float = Field(default=1e-5, gt=0)
    batch_tokens: Int = Field(default=8192, ge=2)
    rank: Int = Field(default=8, ge=1)
    alpha: Int = Field(default=16, ge=1)  # an integer, as peft takes it; the adapters' scale is alpha / rank
    target_modules: tuple[str, ...] = Field(default=LORA_TARGETS, min_length=1)

    @model_validator(mode="after")
    def lora_keys_only_for_lora(self) -> RecoverySpec:
        names = [name for name in self.target_modules if not name or name != name.strip()]
        if names:
            raise ValueError(f"recovery.target_modules: {names[0]!r} is not a module name")
        repeated = [name for i, name in enumerate(self.target_modules) if name in self.target_modules[:i]]
        if repeated:
            raise ValueError(f"recovery.target_modules: {repeated[0]!r} appears more than once")
        if self.method == "full":  # set but unread, they would still change the run id
            changed = [key for key in ("rank", "alpha", "target_modules")
                       if getattr(self, key) != type(self).model_fields[key].default]
            if changed:
                raise ValueError(f"recovery.{changed[0]}: only read with recovery.method: lora (method is full)")
        return self
