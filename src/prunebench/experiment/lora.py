"""LoRA recovery of a pruned language model through ``peft``, the mask held exactly.

peft puts a pair of low-rank factors A (rank x in) and B (out x rank, zero at the start) beside
every targeted Linear and freezes everything else. Its own forward adds ``B(A(x)) * scaling`` to
the layer's output and its merge adds the dense delta ``B @ A * scaling`` to the weight: both
would give the pruned entries weight again. Here each adapted layer computes instead

    y = x (W + M * (B @ A) * scaling)^T + b

with ``M`` the layer's keep mask: the delta is masked while training, so the merged weights
(``W + M * delta``, written exactly zero where ``M`` prunes) compute exactly the function that
was trained. The cost is a dense weight gradient per layer, as full recovery has; what LoRA
saves is the optimizer state (and the trained parameters), recorded with the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import ConfigError
from prunebench.spec import RecoverySpec

log = logging.getLogger("prunebench")

ADAPTER = "default"  # peft's name for the one adapter


def lora_targets(prunable: Mapping[str, torch.Tensor], spec: RecoverySpec) -> list[str]:
    """The module names ``spec.target_modules`` selects among the pruned layers (``prunable``:
    weight name -> weight), matched as peft matches them: the whole name or its last parts.
    ConfigError when a name selects none, listing the layers' own names."""
    modules = [name.removesuffix(".weight") for name in prunable]
    chosen: list[str] = []
    for target in spec.target_modules:
        matches = [m for m in modules if m == target or m.endswith("." + target)]
        if not matches:
            known = sorted({m.rsplit(".", 1)[-1] for m in modules})
            raise ConfigError(f"recovery.target_modules: {target!r} names no pruned layer of the model "
                              f"(LoRA adapts pruned layers only; theirs are {', '.join(known)})")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError("recovery.method: lora needs peft (pip install 'prunebench[lm]')") from None


@dataclass
class Adapters:
    """What LoRA trains: the adapted layers and the number of trainable parameters."""

    layers: list[str]
    trainable_parameters: int


def masked_forward(layer: Any, keep: torch.Tensor) -> Callable[..., torch.Tensor]:
    """The forward of one of peft's LoRA Linears with its delta masked (see the module's doc)."""
    base, lora_a, lora_b = layer.base_layer, layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]
    scaling = layer.scaling[ADAPTER]

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        delta = (lora_b.weight @ lora_a.weight) * scaling
        return F.linear(x, base.weight + delta * keep, base.bias)

    return forward


@contextmanager
def lora_adapters(model: nn.Module, mask: Mapping[str, torch.Tensor], spec: RecoverySpec,
                  prunable: Mapping[str, torch.Tensor]) -> Iterator[Adapters]:
    """``model`` with LoRA adapters on its targeted pruned layers, only they trainable; on a
    normal exit the masked deltas are merged into the weights. The adapters are removed and every
    parameter's ``requires_grad`` is put back either way. peft's initialization of A draws from
    the global RNG: the caller seeds it."""
    from peft import LoraConfig, get_peft_model

    layers = lora_targets(prunable, spec)
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=layers, lora_dropout=0.0, bias="none")
    wrapped = get_peft_model(model, config)  # injects into ``model`` itself and freezes its weights
    try:
        keeps = {}
        for name in layers:
            layer: Any = model.get_submodule(name)  # one of peft's LoRA Linears
            keep = mask.get(f"{name}.weight")
            weight = layer.base_layer.weight
            # a targeted layer without a mask entry (nothing pruned there) keeps every delta entry
            keeps[name] = (torch.ones_like(weight) if keep is None else keep.to(weight.device, weight.dtype))
            layer.forward = masked_forward(layer, keeps[name])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        yield Adapters(layers=layers, trainable_parameters=trainable)
        with torch.no_grad():
            for name in layers:
                layer = model.get_submodule(name)
                weight, keep = layer.base_layer.weight, keeps[name]
                delta = (layer.lora_B[ADAPTER].weight @ layer.lora_A[ADAPTER].weight) * layer.scaling[ADAPTER]
                # where: exactly zero where pruned, whatever the delta holds there (even inf or NaN)
                weight.copy_(torch.where(keep.bool(), weight + delta, torch.zeros_like(weight)))
    finally:
        for name in layers:
            layer = model.get_submodule(name)
            if "forward" in vars(layer):
                del layer.forward
        wrapped.unload()  # the original Linears back in place, holding the merged weights
        for name, param in model.named_parameters():
            param.requires_grad_(requires_grad.get(name, True))
