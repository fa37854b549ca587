"""The dense model: where it comes from (``dense``), and what its figures depend on (the dense specs)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from prunebench.spec.base import MAX_SEED, SHA256_PATTERN, Float, Int, Spec
from prunebench.spec.language_model import EvaluationSpec
from prunebench.spec.training import TrainSpec


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
