"""The Python API: prune -> fine-tune -> measure for your own ``nn.Module`` and tensors.

    data = DataSplits.from_tensors(train=(x, y), test=(x_test, y_test))
    fit(model, data, epochs=10)      # or bring an already trained model
    mask = prune(model, data, strategy="magnitude", compression=8)
    finetune(model, data, mask, epochs=2, lr=0.01)
    print(measure(model, data, mask).sizes.compression_ratio)

Each function takes ``device=`` ("cpu", "cuda", "cuda:N", "mps"), checked against the
installed torch like a config's ``device``; the model and the data move there. Left out, they
stay where they are.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from prunebench.spec import MAX_SEED, FinetuneSpec, PruneSpec, TrainSpec, format_validation_error
from prunebench.data import DataSplits
from prunebench.data.pixels import Pixels
from prunebench.devices import check_device
from prunebench.errors import ConfigError
from prunebench.metrics import evaluate, mac_metrics, size_metrics
from prunebench.pruning import KeepPruned, Mask, PrunablePolicy, prunable_parameters
from prunebench.pruning.prune import prune_model
from prunebench.record import Macs, Measurement, Sizes
from prunebench.train import TrainLog, train


def _spec(kind: type[Any], **fields: Any) -> Any:
    try:
        return kind(**fields)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def _seed(seed: Any) -> int:
    """The range a config's ``seed`` has: a negative seed or 2**70 fails the same way here."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed: {seed!r} is not an integer from 0 to {MAX_SEED}")
    return seed


def _checked(model: Any, data: Any, masks: dict[str, Any]) -> None:
    """Refuse a call that would fail (or silently mislead) partway, before anything is moved or changed.

    ``masks``: argument name -> a Mask (or None) that must fit ``model``.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, DataSplits):
        raise ConfigError(f"data: expected a DataSplits (DataSplits.from_tensors(train=(x, y), test=(x, y))), got {type(data).__name__}")
    params = dict(model.named_parameters())
    for arg, mask in masks.items():
        if mask is None:
            continue
        if not isinstance(mask, Mask):
            raise ConfigError(f"{arg}: expected a Mask (what prune returns), got {type(mask).__name__}")
        unfit = sorted(name for name, keep in mask.items() if name not in params or params[name].shape != keep.shape)
        if unfit:
            raise ConfigError(f"{arg}: the mask does not fit this model (no parameter of that name and shape): {unfit[:3]}")
    labels = [y for y in (data.train_y, data.val_y, data.test_y) if y.numel()]
    if not labels:
        raise ConfigError("data: no labels; each split needs examples")
    low, high = min(int(y.min()) for y in labels), max(int(y.max()) for y in labels)
    outputs = _outputs(model, data.train_x)
    if low < 0 or (outputs is not None and high >= outputs):
        allowed = f"0 to {outputs - 1}, one per output of the model" if outputs is not None else "0 or more"
        raise ConfigError(f"data: label {low if low < 0 else high} is out of range; labels must be {allowed}")


def _outputs(model: nn.Module, x: Any) -> int | None:
    """How many classes ``model`` scores, from one example in eval mode (no parameter or
    running statistic changes); None where that cannot be read (a stream, a non-(N, C) output)."""
    if not isinstance(x, (torch.Tensor, Pixels)) or len(x) == 0:
        return None
    first = next(model.parameters(), None)
    example = x[:1] if first is None else x[:1].to(first.device)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            out = model(example)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"data: the model cannot take inputs of shape {tuple(example.shape[1:])}: {reason}") from None
    finally:
        for module, training in modes.items():
            module.training = training
    return out.shape[1] if isinstance(out, torch.Tensor) and out.ndim == 2 else None


def _placed(model: nn.Module, data: DataSplits, device: str | None) -> DataSplits:
    """The data on ``device`` (checked first), with the model moved there too; unchanged for None."""
    if device is None:
        return data
    target = check_device(device)
    model.to(target)
    return data.to(target)


GENERIC_PRUNE_FIELDS = ("structure", "speedup", "channel_fraction", "merge", "merge_threshold", "score_batches", "batch_size")


def prune(
    model: nn.Module,
    data: DataSplits,
    strategy: str = "magnitude",
    compression: float | None = None,
    *,
    scope: str = "global",
    seed: int = 0,
    prunable: PrunablePolicy | None = None,
    previous: Mask | None = None,
    device: str | None = None,
    **options: Any,
) -> Mask:
    """Prune ``model`` in place to whole-model ``compression`` (default 4); returns the mask.

    Extra keyword arguments are PruneSpec fields (``structure``, ``speedup``,
    ``channel_fraction``, ``merge``, ``merge_threshold``, ``score_batches``, ``batch_size``) or
    the strategy's own options. ``seed`` (default 0) seeds the scoring batches and any random
    scores, and draws which of the weights tied at the keep boundary are pruned.
    """
    _checked(model, data, {"previous": previous})
    generic = {k: options.pop(k) for k in GENERIC_PRUNE_FIELDS if k in options}
    if compression is not None:
        generic["compression"] = compression
    spec = _spec(
        PruneSpec, strategy=strategy, scope=scope, prunable=prunable or PrunablePolicy(), options=options, **generic,
    )
    return prune_model(model, _placed(model, data, device), spec, seed=_seed(seed), previous=previous)


def fit(model: nn.Module, data: DataSplits, *, seed: int = 0, device: str | None = None, **recipe: Any) -> TrainLog:
    """Train a dense model with the same loop prunebench uses everywhere. ``recipe``: TrainSpec fields."""
    _checked(model, data, {})
    spec = _spec(TrainSpec, **recipe)
    return train(model, _placed(model, data, device), spec, seed=_seed(seed), stage="train")


def finetune(
    model: nn.Module, data: DataSplits, mask: Mask, *, seed: int = 0, device: str | None = None, **recipe: Any
) -> TrainLog:
    """Fine-tune with every pruned weight held at exactly zero. ``recipe``: TrainSpec fields."""
    _checked(model, data, {"mask": mask})
    if mask is None:
        raise ConfigError("mask: expected the Mask that prune returned, got None")
    spec = _spec(FinetuneSpec, **recipe)  # the defaults of a config's finetune section
    data = _placed(model, data, device)
    return train(model, data, spec, seed=_seed(seed), callbacks=[KeepPruned(model, mask)], stage="finetune")


def measure(
    model: nn.Module,
    data: DataSplits,
    mask: Mask | None = None,
    *,
    prunable: PrunablePolicy | None = None,
    device: str | None = None,
) -> Measurement:
    """Test accuracy, sizes and MACs (the parts of a run's record that apply), as docs/metrics.md defines them.

    ``mask`` is the mask the model was pruned with; leave it out for a model that holds no
    mask, such as the smaller model :func:`prunebench.pruning.compact.compact` returns (its
    sizes and MACs are then those of the compacted architecture).

    "Prunable" parameters are those of ``prunable`` (the policy given to ``prune``; default
    ShrinkBench's), as in a run's ``result.json``, whatever the mask covers (a channel mask
    also covers batch-norm scales and biases). A model whose masked entries are not zero
    (fine-tuned without ``finetune``'s masking, say) is refused: its counts would mislead.
    """
    _checked(model, data, {"mask": mask})
    data = _placed(model, data, device)
    params = dict(model.named_parameters())
    mask = mask if mask is not None else Mask.ones(params)
    revived = [name for name, keep in mask.items() if params[name].detach()[~keep.to(params[name].device)].any()]
    if revived:
        raise ConfigError(f"measure: pruned entries of {revived[:3]} are not zero; fine-tune with pb.finetune(model, data, mask)")
    test = evaluate(model, data.test_x, data.test_y)
    return Measurement(
        sizes=Sizes.of(size_metrics(model, prunable_parameters(model, prunable))),
        macs=Macs.of(mac_metrics(model, data.input_shape)),
        top1=test.top1, top5=test.top5, loss=test.loss, test_examples=test.examples,
    )
