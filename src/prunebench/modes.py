"""Eval mode for a measurement or a scoring pass, with every module's own mode restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside (batch-norm statistics must not move, dropout is off), then every
    module's own mode back: ``model.train(was_training)`` would reset a submodule the caller
    had frozen in eval mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
