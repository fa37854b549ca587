"""A user's own dense weights: a state_dict file, read without running code, fitted to a native model.

Files are ``torch.save`` state_dicts read with ``weights_only=True`` (tensors and plain
containers only, never arbitrary unpickling) or ``.safetensors``. A training checkpoint that
wraps its weights (``{"state_dict": ...}``, ``{"model": ...}``) and the prefixes that
``DataParallel`` (``module.``) and ``torch.compile`` (``_orig_mod.``) add are unwrapped.

Other libraries' key names map onto a native model where its layout is theirs: the native
ResNet-18/50 and MobileNetV2 use torchvision's module names (and timm's ResNets use the same),
so those state_dicts load unchanged; a model registers a key map for any other library with
:func:`register_layout` (timm's MobileNetV2 in ``models.imagenet``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError

KeyMap = Callable[[str], str]  # a foreign key -> the native key
WRAPPERS = ("state_dict", "model_state_dict", "model")  # where training checkpoints keep their weights
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
OPTIONAL_SUFFIX = ".num_batches_tracked"  # older state_dicts lack it; it never changes an output
_LAYOUTS: dict[str, dict[str, KeyMap]] = {}  # model name -> {library: key map}, filled at import


def register_layout(model: str, library: str) -> Callable[[KeyMap], KeyMap]:
    """Register ``library``'s key names for registered ``model``: a function foreign key -> native key."""

    def decorator(key_map: KeyMap) -> KeyMap:
        layouts = _LAYOUTS.setdefault(model, {})
        if library in layouts:
            raise ValueError(f"a {library} layout for {model} is already registered")
        layouts[library] = key_map
        return key_map

    return decorator


def layouts(model: str) -> dict[str, KeyMap]:
    """The foreign layouts registered for ``model`` (library -> key map)."""
    return dict(_LAYOUTS.get(model, {}))


def read_state_dict(path: Path, key: str = "dense.checkpoint") -> dict[str, torch.Tensor]:
    """The tensors of ``path`` by name; anything that is not a readable state_dict is a ConfigError."""
    try:
        if path.suffix == ".safetensors":
            state = _read_safetensors(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse a user's file is a one-line input error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{key}: {path} is not a state_dict prunebench can read without running code "
            f"(torch.save of tensors, read with weights_only=True, or .safetensors): {reason}"
        ) from None
    return _tensors(state, path, key)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ConfigError(f"{Path(path).name}: reading .safetensors needs the safetensors package (pip install safetensors)") from None
    return load_file(str(path), device="cpu")


def _tensors(state: Any, path: Path, key: str) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[w] for w in WRAPPERS if isinstance(state.get(w), Mapping)), None)
        state = inner if inner is not None else state
    if not isinstance(state, Mapping) or not state:
        raise ConfigError(f"{key}: {path} holds no state_dict (a mapping of names to tensors)")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"{key}: {path} holds {name!r}, a {type(value).__name__}, where a state_dict has tensors")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):  # would train or prune to NaN
            raise ConfigError(f"{key}: {path} holds NaN or infinite values in {name!r}; it is not a usable model")
    state = {str(k): v for k, v in state.items()}
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def fit_state_dict(
    model_name: str, model: nn.Module, state: Mapping[str, torch.Tensor], key: str = "dense.checkpoint"
) -> dict[str, torch.Tensor]:
    """``state`` under ``model``'s own key names, checked to fit it exactly.

    The native names are tried first, then each registered layout of ``model_name``; the one
    that fits is returned. When none fits, the error names the first mismatched key (in the
    model's order) of the closest candidate, with both shapes.
    """
    native = {k: v.shape for k, v in model.state_dict().items()}
    candidates = {"native": dict(state)}
    for library, key_map in layouts(model_name).items():
        candidates[library] = {key_map(k): v for k, v in state.items()}
    problems = {library: _first_mismatch(native, found) for library, found in candidates.items()}
    for library, problem in problems.items():
        if problem is None:
            fitted = candidates[library]
            current = model.state_dict()
            return {k: fitted[k] if k in fitted else current[k].clone() for k in native}
    closest = max(candidates, key=lambda lib: sum(
        1 for k, v in candidates[lib].items() if k in native and tuple(v.shape) == tuple(native[k])
    ))
    tried = f" (key names tried: native, {', '.join(c for c in candidates if c != 'native')})" if len(candidates) > 1 else ""
    raise ConfigError(f"{key}: the state_dict does not fit model {model_name}: {problems[closest]}{tried}")


def _first_mismatch(native: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor]) -> str | None:
    for name, shape in native.items():
        if name not in found:
            if name.endswith(OPTIONAL_SUFFIX):
                continue
            return f"missing key {name} (model shape {list(shape)})"
        if tuple(found[name].shape) != tuple(shape):
            return f"key {name} has shape {list(found[name].shape)} in the checkpoint, {list(shape)} in the model"
    extra = [name for name in found if name not in native]
    if extra:
        return f"unexpected key {extra[0]} (shape {list(found[extra[0]].shape)}), not in the model"
    return None


def load_checkpoint(model_name: str, model: nn.Module, path: Path, key: str = "dense.checkpoint") -> None:
    """Read ``path``, fit it to ``model`` (:func:`fit_state_dict`) and load it, strictly."""
    fitted = fit_state_dict(model_name, model, read_state_dict(path, key), key)
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in fitted.items()})
