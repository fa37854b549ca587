"""Which parameters a strategy may prune: an explicit, configurable policy."""

from __future__ import annotations

import fnmatch

from torch import nn

# The policy itself is torch-free (the spec reads it); re-exported here beside the code applying it.
from prunebench.pruning.policy import DEFAULT_LAYER_TYPES, PrunablePolicy

__all__ = ["DEFAULT_LAYER_TYPES", "PrunablePolicy", "classifier_name", "prunable_parameters"]


def classifier_name(model: nn.Module, layer_types: tuple[str, ...] = DEFAULT_LAYER_TYPES) -> str | None:
    """Name of the last layer of ``layer_types``: the one that produces the logits."""
    names = [name for name, module in model.named_modules() if type(module).__name__ in layer_types]
    return names[-1] if names else None


def prunable_parameters(model: nn.Module, policy: PrunablePolicy | None = None) -> dict[str, nn.Parameter]:
    """The parameters ``policy`` allows pruning, by their ``named_parameters`` names."""
    policy = policy or PrunablePolicy()
    skip_module = classifier_name(model, policy.layer_types) if policy.exclude_classifier else None
    kinds = ("weight", "bias") if policy.include_bias else ("weight",)
    chosen: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if type(module).__name__ not in policy.layer_types or module_name == skip_module:
            continue
        for kind in kinds:
            param = getattr(module, kind, None)
            if not isinstance(param, nn.Parameter):
                continue
            name = f"{module_name}.{kind}" if module_name else kind
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.exclude):
                chosen[name] = param
    return chosen
