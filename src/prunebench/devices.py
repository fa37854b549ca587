"""Which torch devices this machine can run on, checked before anything runs.

``config`` checks a device's form (cpu, cuda, cuda:N, mps); this module checks it against the
installed torch, for the CLI's plans and the Python API alike.
"""

from __future__ import annotations

import torch

from prunebench.spec import DEVICE_PATTERN
from prunebench.errors import ConfigError


def check_device(device: str, key: str = "device") -> torch.device:
    """``device`` as a torch device, if the installed torch can use it here; ``key`` names it in errors.

    ``cuda:N`` must be below the GPU count; ``mps`` needs a torch built with it on a Mac that has it.
    """
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"{key}: {device!r} is not a device prunebench runs on (allowed: cpu, cuda, cuda:N, mps)")
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {device} is not available: this torch {torch.__version__} sees no CUDA GPU (use cpu)")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ConfigError(f"{key}: {device} is not available: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}: mps is not available with this torch {torch.__version__} on this machine (use cpu)")
    return torch.device(device)
