"""One optimizer step of the training loop, in the precision, memory format and compilation a recipe asks for.

``train.precision`` bf16/fp16 runs the forward (and so the backward) under ``torch.autocast``; the
weights, the optimizer state and the masks stay float32, so a masked weight stays exactly zero.
fp16 adds a gradient scaler (its overflowing steps are skipped, as usual). ``train.channels_last``
holds the model and image batches in channels-last memory format while training and gives the
model back in the contiguous format. ``train.compile`` compiles the training forward; the
compiled module shares the model's parameters, so callbacks that update them in place (masking)
act on what the compiled code reads. Evaluation always runs the plain model in float32.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from prunebench.spec import TrainSpec
from prunebench.errors import ConfigError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_supported(device_type: str, dtype: torch.dtype) -> bool:
    """Whether this torch runs autocast in ``dtype`` on ``device_type``.

    Where it does not, torch warns and silently runs in float32; asked here, before training, so
    a recipe is never recorded as mixed precision while running in float32.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.autocast(device_type, dtype=dtype):
                one = torch.ones(1, 1, device=device_type)
                return (one @ one).dtype == dtype  # what autocast actually did to a matmul
    except RuntimeError:  # a device type autocast does not know
        return False


def check_precision(spec: TrainSpec, device: torch.device | str, section: str = "train") -> None:
    """Refuse ``{section}.precision`` where this torch cannot run it on ``device``."""
    if spec.precision == "fp32":
        return
    kind = torch.device(device).type
    if not autocast_supported(kind, AUTOCAST_DTYPES[spec.precision]):
        allowed = ", ".join(["fp32", *(name for name, dtype in AUTOCAST_DTYPES.items() if autocast_supported(kind, dtype))])
        raise ConfigError(
            f"{section}.precision: {spec.precision} is not supported by torch {torch.__version__} autocast on {kind} "
            f"(allowed there: {allowed})"
        )


class TrainingStep:
    """forward, loss, backward and optimizer step for one batch; ``finish`` restores the model's layout."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        spec: TrainSpec,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
    ) -> None:
        check_precision(spec, device)
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.channels_last = spec.channels_last
        self.device_type = device.type
        self.dtype = AUTOCAST_DTYPES.get(spec.precision)
        # The scaler's step skips an update whose gradients overflowed in float16.
        self.scaler = torch.amp.GradScaler(device.type) if spec.precision == "fp16" else None
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # in place: parameters keep their identity
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if spec.compile else model

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One step on a batch; returns the batch's (undetached) loss."""
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else nullcontext():
            loss = self.loss_fn(self.forward(inputs), targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.float()

    def finish(self) -> None:
        """The model back in the contiguous format the rest of prunebench (and a checkpoint) expects."""
        if self.channels_last:
            self.model.to(memory_format=torch.contiguous_format)
