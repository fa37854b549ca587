"""Which parameters a strategy may prune: the policy as a spec section, without torch.

The spec (and so ``prunebench results``, which only reads records) needs the policy's fields, not
the code that applies it to a model; that code is :mod:`prunebench.pruning.prunable`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

DEFAULT_LAYER_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


class PrunablePolicy(BaseModel):
    """ShrinkBench's default: weights of Linear and Conv layers, except the final classifier.

    Biases and normalization layers are never pruned unless asked. The classifier is the last
    module of ``layer_types`` in registration order. ``exclude`` takes glob patterns over
    parameter names (e.g. ``"features.0.*"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer_types: tuple[str, ...] = DEFAULT_LAYER_TYPES
    # strict, like the spec's own keys: "no" or 0 is refused, not read as false
    exclude_classifier: Annotated[bool, Strict()] = True
    include_bias: Annotated[bool, Strict()] = False
    exclude: tuple[str, ...] = ()
