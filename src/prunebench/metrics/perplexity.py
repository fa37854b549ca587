"""Perplexity of a causal LM on a token sequence: exp of the mean negative log-likelihood.

Two protocols (``evaluation.protocol``):

``papers`` (:func:`papers_perplexity`): Wanda's ``eval_ppl`` and SparseGPT's ``llama_eval``.
The sequence is cut into non-overlapping windows of ``seq_len`` tokens from its start, the
trailing partial window is dropped, each window is scored on its own (its first token has no
context and is not a target), and the NLL is averaged over all scored tokens. The papers
average the windows' mean losses, which is the same number: every window scores ``seq_len - 1``
tokens. ``max_tokens`` keeps ``max_tokens // seq_len`` of the papers' windows, evenly spaced
over the sequence, so a capped figure scores a subset of exactly the papers' windows.

``sliding`` (:func:`perplexity`): the sequence is cut into windows of ``window`` tokens
starting every ``stride`` tokens (the Hugging Face strided recipe). Each window scores only the
tokens the previous windows did not and that have at least one token of context inside it. With
``stride < window`` every token after the first is scored exactly once, with between
``window - stride`` and ``window - 1`` tokens of context. ``stride == window`` gives disjoint
windows like the papers', except that the trailing partial window is scored too.
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
    protocol: str = "sliding"  # "papers" or "sliding" (the module docstring)

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
    ``.logits``) in sliding windows, windows of equal length evaluated ``batch_size`` at a time.
    The model's train/eval mode is restored afterwards."""
    tokens = _checked(model, tokens, window, batch_size)
    total, count = _score(model, tokens, windows(tokens.numel(), window, stride), batch_size)
    return PerplexityResult(value=math.exp(total / count), tokens_scored=count, window=window, stride=stride)


def papers_windows(length: int, seq_len: int, max_windows: int | None = None) -> list[Window]:
    """The papers' windows over ``length`` tokens: ``length // seq_len`` disjoint windows from
    the start, the tail dropped; ``max_windows`` keeps that many of them, evenly spaced (the
    first always among them)."""
    if seq_len < 2:
        raise ConfigError(f"perplexity window must be at least 2 tokens, got {seq_len}")
    count = length // seq_len
    if count == 0:
        raise ConfigError(f"perplexity needs at least one window of {seq_len} tokens, got {length} tokens")
    if max_windows is not None and max_windows < 1:
        raise ConfigError(f"perplexity needs at least one window, got max_windows={max_windows}")
    chosen = range(count) if max_windows is None or max_windows >= count else \
        [index * count // max_windows for index in range(max_windows)]
    return [Window(i * seq_len, (i + 1) * seq_len, i * seq_len + 1) for i in chosen]


def papers_perplexity(model: nn.Module, tokens: torch.Tensor, *, seq_len: int, max_tokens: int | None = None,
                      batch_size: int = 1) -> PerplexityResult:
    """exp(mean NLL) of ``tokens`` by the papers' protocol (the module docstring): disjoint
    windows of ``seq_len``, the tail dropped; at most ``max_tokens // seq_len`` windows."""
    tokens = _checked(model, tokens, seq_len, batch_size)
    if max_tokens is not None and max_tokens < seq_len:
        raise ConfigError(f"perplexity max_tokens {max_tokens} is less than one window of {seq_len} tokens")
    plan = papers_windows(tokens.numel(), seq_len, None if max_tokens is None else max_tokens // seq_len)
    total, count = _score(model, tokens, plan, batch_size)
    return PerplexityResult(value=math.exp(total / count), tokens_scored=count, window=seq_len, stride=seq_len,
                            protocol="papers")


def _checked(model: nn.Module, tokens: torch.Tensor, window: int, batch_size: int) -> torch.Tensor:
    if batch_size < 1:
        raise ConfigError(f"perplexity batch_size must be >= 1, got {batch_size}")
    tokens = tokens.reshape(-1).long()
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and min(window, tokens.numel()) > limit:
        raise ConfigError(f"perplexity window {window} is longer than the model's {limit} positions")
    return tokens


def _score(model: nn.Module, tokens: torch.Tensor, plan: list[Window], batch_size: int) -> tuple[float, int]:
    """The summed NLL (float64) of the targets of ``plan``'s windows, and how many there were."""
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
    return total, count


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
