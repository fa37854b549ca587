"""Registered model factories. Register your own with ``@MODELS.register("name")``."""

from prunebench.models import cifar_resnet, convnets, imagenet, lenet, mlp, vgg  # noqa: F401  (registers the models)
from prunebench.models.base import MODELS, ModelFactory, create_model

__all__ = ["MODELS", "ModelFactory", "create_model"]
