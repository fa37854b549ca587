"""Deployment forms of an eval model: what a deployment would run instead of the training graph.

- ``eager``: the model as trained, in eval mode.
- ``bn-folded``: every BatchNorm that directly follows a convolution or Linear layer (and is
  that layer's only reader) folded into its weights with torch's fusion utilities
  (``torch.nn.utils.fusion``); the BatchNorm becomes ``nn.Identity``. In eval mode this computes
  the same function (up to float rounding) with one pass over the activations fewer per layer.
- ``bn-folded-channels-last``: the folded model with its 4-d weights in channels-last memory
  layout; inputs are given the same layout (:func:`prepare_input`).

Conv -> BN pairs are found by tracing the forward pass with ``torch.fx``, so a BatchNorm is
folded only where the graph proves its input is the convolution's output and nothing else
reads it. The returned model keeps its class, forward and module names: only the fused layers
and the Identity modules differ.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from prunebench.latency_names import EAGER, FOLDED_CHANNELS_LAST  # the names' one definition
from prunebench.latency_names import LATENCY_FORMS as FORMS
from prunebench.errors import ConfigError


def check_form(form: str, key: str = "form") -> None:
    if form not in FORMS:
        raise ConfigError(f"{key}: unknown deployment form {form!r} (allowed: {', '.join(FORMS)})")


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, batchnorm) module names where the BatchNorm reads only that layer's output and
    the layer's output goes only to that BatchNorm, each module called once."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # tracing raises whatever the forward raises on proxies
        raise ConfigError(f"BN folding traces the model's forward with torch.fx, which failed: {exc}") from None
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(model.get_submodule(node.target), _BatchNorm):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        layer, bn = model.get_submodule(source.target), model.get_submodule(node.target)
        if calls[source.target] == 1 and calls[node.target] == 1 and foldable(layer, bn):
            pairs.append((str(source.target), str(node.target)))
    return pairs


def foldable(layer: nn.Module, bn: _BatchNorm) -> bool:
    if bn.running_mean is None or bn.running_var is None:  # batch statistics even in eval: nothing to fold
        return False
    if isinstance(layer, _ConvNd):
        return layer.out_channels == bn.num_features
    return isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d) and layer.out_features == bn.num_features


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every foldable BatchNorm folded into its layer."""
    folded = copy.deepcopy(model).eval()
    for layer_name, bn_name in foldable_pairs(folded):
        layer, bn = folded.get_submodule(layer_name), folded.get_submodule(bn_name)
        if isinstance(layer, _ConvNd):
            fused: nn.Module = fuse_conv_bn_eval(layer, bn, transpose=isinstance(layer, _ConvTransposeNd))
        else:
            fused = fuse_linear_bn_eval(layer, bn)
        folded.set_submodule(layer_name, fused)
        folded.set_submodule(bn_name, nn.Identity())
    return folded


def deployment_form(model: nn.Module, form: str) -> nn.Module:
    """An eval-mode copy of ``model`` in deployment ``form`` (one of :data:`FORMS`)."""
    check_form(form)
    if form == EAGER:
        return copy.deepcopy(model).eval()
    folded = fold_batchnorm(model)
    if form == FOLDED_CHANNELS_LAST:
        folded = folded.to(memory_format=torch.channels_last)
    return folded


def prepare_input(x: torch.Tensor, form: str) -> torch.Tensor:
    """The input in the layout ``form`` expects (channels-last for 4-d image batches)."""
    if form == FOLDED_CHANNELS_LAST and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
