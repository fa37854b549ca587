"""Measured prefill speed of causal LMs: tokens per second of one forward pass over a prompt.

Dense and pruned models are timed in turns (see :func:`prunebench.metrics.latency.interleaved_times`)
on the same random prompt of ``batch_size`` x ``seq_len`` tokens, with the key-value cache off;
the record keeps the median and interquartile range, batch, sequence length, threads, device,
dtype and allocator, and the speedup is the median of the per-round ratios.

What to expect, said plainly: a pruned model whose zeros sit in dense weight matrices runs the
same dense kernels, so unstructured masks (and N:M masks in dense storage) are about 1x. Kernels
that skip zeros exist for 2:4 semi-structured sparsity only, and only on CUDA (NVIDIA Ampere or
newer, float16/bfloat16: ``torch.sparse.to_sparse_semi_structured``); there are none on CPU.
Where CUDA is present, :func:`semi_structured_speed` times them against the dense model.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.metrics.latency import (
    LatencyRecord,
    cpu_name,
    interleaved_times,
    paired_speedup,
    steady_allocator,
    summarize,
    torch_threads,
)

CPU_KERNELS = ("unstructured and N:M masks run on dense kernels on CPU (expected speedup about 1x); "
               "no sparse kernels for 2:4 exist on CPU")
CUDA_KERNELS = ("unstructured masks run on dense kernels (about 1x); 2:4 masks can run on torch's "
                "semi-structured sparse kernels (torch.sparse.to_sparse_semi_structured, float16/bfloat16)")


@dataclass(frozen=True)
class LMLatencyRecord:
    """One model's prefill timing; ``latency`` holds milliseconds per forward pass."""

    latency: LatencyRecord
    seq_len: int

    @property
    def tokens_per_s(self) -> float:
        return self.latency.batch_size * self.seq_len / (self.latency.median_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return {**self.latency.to_dict(), "seq_len": self.seq_len, "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class PrefillComparison:
    """Dense against pruned, timed in turns; speedup = dense time / pruned time per round."""

    dense: LMLatencyRecord
    pruned: LMLatencyRecord
    speedup: float
    speedup_q1: float
    speedup_q3: float
    kernels: str  # which sparse kernels exist where this was measured

    def to_dict(self) -> dict[str, Any]:
        return {"dense": self.dense.to_dict(), "pruned": self.pruned.to_dict(), **{
            k: v for k, v in asdict(self).items() if k not in ("dense", "pruned")}}


def sparse_kernels(device: torch.device | str) -> str:
    """The plain statement of which sparse kernels exist on ``device``."""
    return CUDA_KERNELS if torch.device(device).type == "cuda" else CPU_KERNELS


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters as stored (tied weights once; zeros in dense storage count)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def prefill_speed(dense: nn.Module, pruned: nn.Module, *, batch_size: int = 1, seq_len: int = 128,
                  threads: int | None = None, warmup: int = 2, repeats: int = 10,
                  dtype: torch.dtype = torch.float32, labels: tuple[str, str] = ("dense", "pruned"),
                  runtime: str = "torch-eager") -> PrefillComparison:
    """Prefill tokens/s of ``dense`` and ``pruned`` on their own device, interleaved.

    Models not in ``dtype`` are timed as converted copies; modes are restored afterwards.
    """
    if batch_size < 1 or seq_len < 1:
        raise ConfigError(f"latency batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
    device = next(dense.parameters()).device
    if next(pruned.parameters()).device != device:
        raise ConfigError(f"dense and pruned models must be on one device, got {device} and "
                          f"{next(pruned.parameters()).device}")
    vocab = int(getattr(getattr(dense, "config", None), "vocab_size", 0) or dense.get_input_embeddings().num_embeddings)
    prompt = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    models = {label: in_dtype(model, dtype) for label, model in zip(labels, (dense, pruned))}
    allocator = "" if device.type == "cuda" else steady_allocator()
    modes = {label: m.training for label, m in models.items()}
    try:
        with torch_threads(threads) as used:
            times = interleaved_times({label: prefill_runner(m, prompt) for label, m in models.items()},
                                      warmup, repeats)
    finally:
        for label, m in models.items():
            m.train(modes[label])
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else cpu_name()
    records = [LMLatencyRecord(summarize(times[label], model=label, runtime=runtime if device.type != "cuda"
                                         else "torch-cuda", device=name,
                                         dtype=str(dtype).removeprefix("torch."), batch_size=batch_size,
                                         threads=used, warmup=warmup, allocator=allocator), seq_len)
               for label in labels]
    ratio, q1, q3 = paired_speedup(times[labels[0]], times[labels[1]])
    return PrefillComparison(records[0], records[1], ratio, q1, q3, sparse_kernels(device))


def in_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    if all(p.dtype == dtype for p in model.parameters() if p.is_floating_point()):
        return model
    return copy.deepcopy(model).to(dtype)


def prefill_runner(model: nn.Module, prompt: torch.Tensor) -> Any:
    """One eval-mode prefill pass with no key-value cache; on CUDA it waits for its kernels."""
    model.eval()

    def run() -> object:
        with torch.inference_mode():
            out = model(input_ids=prompt, use_cache=False)
        if prompt.device.type == "cuda":
            torch.cuda.synchronize(prompt.device)
        return out

    return run


def is_two_four(weight: torch.Tensor) -> bool:
    """At most 2 nonzeros in every group of 4 consecutive inputs of every row."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1) <= 2).all())


def semi_structured_copy(model: nn.Module, dtype: torch.dtype = torch.float16) -> tuple[nn.Module, list[str]]:
    """A CUDA copy of ``model`` in ``dtype`` whose 2:4 Linear weights are torch semi-structured
    sparse tensors; returns it and the names of the converted layers. CUDA only."""
    from torch.sparse import to_sparse_semi_structured

    if not torch.cuda.is_available():
        raise ConfigError("2:4 semi-structured kernels need CUDA; " + CPU_KERNELS)
    converted = copy.deepcopy(model).to("cuda", dtype)
    names = []
    for name, module in converted.named_modules():
        if isinstance(module, nn.Linear) and is_two_four(module.weight) and module.weight.count_nonzero() > 0:
            try:
                module.weight = nn.Parameter(to_sparse_semi_structured(module.weight.detach()), requires_grad=False)
            except (RuntimeError, ValueError):  # shapes the kernels do not take stay dense
                continue
            names.append(name)
    return converted, names


def semi_structured_speed(dense: nn.Module, pruned: nn.Module, *, batch_size: int = 1, seq_len: int = 128,
                          warmup: int = 5, repeats: int = 20,
                          dtype: torch.dtype = torch.float16) -> PrefillComparison | None:
    """Dense (``dtype``, CUDA) against the 2:4 pruned model on semi-structured kernels, or None
    without CUDA. The pruned record's runtime says how many layers run sparse."""
    if not torch.cuda.is_available():
        return None
    dense_cuda = copy.deepcopy(dense).to("cuda", dtype)
    sparse, names = semi_structured_copy(pruned, dtype)
    if not names:
        raise ConfigError("no Linear layer of the pruned model is 2:4 sparse, so there is nothing for "
                          "the semi-structured kernels to run")
    return prefill_speed(dense_cuda, sparse, batch_size=batch_size, seq_len=seq_len, warmup=warmup,
                         repeats=repeats, dtype=dtype, labels=("dense", f"2:4-semi-structured ({len(names)} layers)"))

