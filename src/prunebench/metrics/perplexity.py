"""Perplexity of a causal LM on a token sequence: exp of the mean negative log-likelihood.

The sequence is cut into windows of ``window`` tokens starting every ``stride`` tokens (the
Hugging Face strided recipe). Each window scores only the tokens the previous windows did not
and that have at least one token of context inside it. With ``stride < window`` every token
after the first is scored exactly once, with between ``window - stride`` and ``window - 1``
tokens of context. ``stride == window`` gives disjoint windows, as SparseGPT and Wanda report
WikiText-2: there the first token of each window has no context and is not scored.
``tokens_scored`` says how many were.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.errors import ConfigError


@dataclass(frozen=True)
class PerplexityResult:
    value: float
    tokens_scored: int
    window: int
    stride: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """Tokens [begin, end) go in; the targets at positions [first_target, end) are scored."""

    begin: int
    end: int
    first_target: int


def windows(length: int, window: int, stride: int) -> list[Window]:
    """The windows over ``length`` tokens. Their targets are disjoint; with ``stride < window``
    they cover positions 1 .. length-1."""
    if window < 2:
        raise ConfigError(f"perplexity window must be at least 2 tokens, got {window}")
    if not 1 <= stride <= window:
        raise ConfigError(f"perplexity stride must be between 1 and the window ({window}), got {stride}")
    if length < 2:
        raise ConfigError(f"perplexity needs at least 2 tokens, got {length}")
    out, scored_to = [], 1  # position 0 has no context
    for begin in range(0, length, stride):
        end = min(begin + window, length)
        first = max(scored_to, begin + 1)  # a target needs a token of context in its window
        if end > first:
            out.append(Window(begin, end, first))
            scored_to = end
        if end == length:
            break
    return out


def perplexity(model: nn.Module, tokens: torch.Tensor, *, window: int, stride: int,
               batch_size: int = 1) -> PerplexityResult:
    """exp(mean NLL) of ``tokens`` (LongTensor (M,)) under ``model`` (a causal LM returning
    ``.logits``), windows of equal length evaluated ``batch_size`` at a time. The model's
    train/eval mode is restored afterwards."""
    if batch_size < 1:
        raise ConfigError(f"perplexity batch_size must be >= 1, got {batch_size}")
    tokens = tokens.reshape(-1).long()
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and min(window, tokens.numel()) > limit:
        raise ConfigError(f"perplexity window {window} is longer than the model's {limit} positions")
    plan = windows(tokens.numel(), window, stride)
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for group in batches(plan, batch_size):
                inputs = torch.stack([tokens[w.begin:w.end] for w in group])
                logits = model(input_ids=inputs, use_cache=False).logits.double()
                for row, w in enumerate(group):
                    # logits at position p predict token p + 1
                    predicted = logits[row, w.first_target - w.begin - 1: w.end - w.begin - 1]
                    targets = tokens[w.first_target:w.end]
                    total += float(F.cross_entropy(predicted, targets, reduction="sum"))
                    count += targets.numel()
    finally:
        model.train(was_training)
    return PerplexityResult(value=math.exp(total / count), tokens_scored=count, window=window, stride=stride)


def batches(plan: list[Window], batch_size: int) -> list[list[Window]]:
    """Consecutive windows of equal length, at most ``batch_size`` per batch."""
    groups: list[list[Window]] = []
    for w in plan:
        last = groups[-1] if groups else None
        if last and len(last) < batch_size and last[0].end - last[0].begin == w.end - w.begin:
            last.append(w)
        else:
            groups.append([w])
    return groups
