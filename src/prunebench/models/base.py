"""The model registry: a model is a factory ``(input_shape, num_classes) -> nn.Module``."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from prunebench.registry import Registry

ModelFactory = Callable[[tuple[int, ...], int], nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")


def create_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MODELS.get(name)(tuple(input_shape), num_classes)


def flat_size(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)


def output_size(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Feature count after ``module`` for one example, found by a dry run."""
    with torch.no_grad():
        return module(torch.zeros(1, *input_shape)).numel()
