"""Multiple-choice accuracy by log-likelihood, as lm-evaluation-harness (0.4.x) scores it.

For a context ``c`` and a choice ``x`` the continuation is ``" " + x`` (lm-eval's default target
delimiter). Tokens, as lm-eval's ``_encode_pair`` makes them for a causal model: trailing
whitespace of the context moves to the continuation; ``ctx = enc(c)``, ``whole = enc(c + cont)``
and the continuation's tokens are ``whole[len(ctx):]`` (``enc`` is the tokenizer's own default,
special tokens included where it adds them, as lm-eval's ``tok_encode``). The choice's
log-likelihood is the sum over those tokens of log p(token | everything before it), with the
model reading ``(ctx + cont)[:-1]``.

- ``acc``: the choice with the highest log-likelihood is the answer.
- ``acc_norm``: the highest log-likelihood divided by the choice's length in characters (lm-eval's
  ``acc_norm``: ``len(choice)``, the delimiter not counted).
- ``acc_bytes``: divided by its UTF-8 length in bytes (lm-eval's ``acc_bytes``).

Ties go to the first choice (``numpy.argmax``'s rule, which lm-eval uses).

:func:`score_items` packs one item into one row: its context once, then every choice's
continuation (less its last token, which is never an input). Each choice's tokens see the
context and their own earlier tokens only, through a 4-D attention mask, and take the positions
they would have after the context alone, so each choice is scored as if alone with the context.
Rows are left-padded, grouped into batches of at most ``batch_tokens`` padded tokens, and only the
last positions of each row (where choices are predicted) go through the LM head.
:func:`score_items_naive` scores each (context, choice) pair in its own forward pass; the tests
hold the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from prunebench.errors import ConfigError

DELIMITER = " "
BATCH_TOKENS = 2048  # per forward pass; the logits kept are at most this many x the vocabulary


@dataclass(frozen=True)
class Encoded:
    """One item's tokens: the context's and each choice's continuation."""

    context: list[int]
    continuations: list[list[int]]


@dataclass(frozen=True)
class ItemScore:
    loglikelihoods: tuple[float, ...]  # one per choice
    gold: int
    acc: bool
    acc_norm: bool
    acc_bytes: bool


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, verbose=False)["input_ids"])


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's ``_encode_pair`` for a causal model (the context must not be empty)."""
    if not context:
        raise ConfigError("a multiple-choice item needs a non-empty context")
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context)
    return ctx, whole[len(ctx):]


def encode_item(tokenizer: Any, context: str, choices: Sequence[str]) -> Encoded:
    pairs = [encode_pair(tokenizer, context, DELIMITER + choice) for choice in choices]
    contexts = {tuple(ctx) for ctx, _ in pairs}
    if len(contexts) != 1:  # the trailing-space rule is per context, so this holds; say so if not
        raise ValueError(f"choices of one item encode different contexts: {context[-40:]!r}")
    if any(not cont for _, cont in pairs):
        raise ValueError(f"a choice of {context[-40:]!r} encodes to no tokens")
    return Encoded(pairs[0][0], [cont for _, cont in pairs])


def judge(loglikelihoods: Sequence[float], choices: Sequence[str], gold: int) -> ItemScore:
    """acc, acc_norm and acc_bytes of one item from its choices' log-likelihoods."""
    lls = np.asarray(loglikelihoods, dtype=float)
    chars = np.array([float(len(c)) for c in choices])
    nbytes = np.array([float(len(c.encode("utf-8"))) for c in choices])
    return ItemScore(tuple(float(x) for x in lls), gold, acc=int(np.argmax(lls)) == gold,
                     acc_norm=int(np.argmax(lls / chars)) == gold, acc_bytes=int(np.argmax(lls / nbytes)) == gold)


def position_limit(model: nn.Module) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def score_items(model: nn.Module, tokenizer: Any, items: Sequence[Any], *,
                batch_tokens: int = BATCH_TOKENS) -> list[ItemScore]:
    """Scores of ``items`` (each with ``context``, ``choices`` and ``gold``), in their order.
    The model's train/eval mode is restored afterwards."""
    if batch_tokens < 1:
        raise ConfigError(f"batch_tokens must be >= 1, got {batch_tokens}")
    if not takes_4d_masks(model):
        return score_items_naive(model, tokenizer, items)
    encoded = [encode_item(tokenizer, item.context, item.choices) for item in items]
    rows = [packed_row(e) for e in encoded]
    limit = position_limit(model)
    for item, e in zip(items, encoded):
        longest = len(e.context) + max(len(c) for c in e.continuations) - 1
        if limit is not None and longest > limit:
            raise ConfigError(f"a multiple-choice item needs {longest} positions, more than the model's {limit}: "
                              f"{item.context[:40]!r}")
    loglikelihoods: list[list[float]] = [[] for _ in items]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches([len(r.tokens) for r in rows], batch_tokens):
                for index, values in zip(batch, score_batch(model, [rows[i] for i in batch], device)):
                    loglikelihoods[index] = values
    finally:
        model.train(was_training)
    return [judge(lls, item.choices, item.gold) for lls, item in zip(loglikelihoods, items)]


def takes_4d_masks(model: nn.Module) -> bool:
    """Whether the model's attention applies a custom 4-D float mask as given: transformers'
    eager and SDPA attention do; flash and flex attention take no such mask, so a model using
    them is scored one pair at a time instead (the same figures, slower)."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return implementation in ("eager", "sdpa")


@dataclass(frozen=True)
class Row:
    """One item packed: ``tokens`` go in at ``positions``; ``segment`` is 0 for the context and
    j + 1 for choice j; ``targets[j]`` are choice j's tokens, predicted at ``predict_at[j]``."""

    tokens: list[int]
    positions: list[int]
    segment: list[int]
    targets: list[list[int]]
    predict_at: list[list[int]]


def packed_row(e: Encoded) -> Row:
    tokens, positions, segment = list(e.context), list(range(len(e.context))), [0] * len(e.context)
    targets, predict_at = [], []
    last_context = len(e.context) - 1
    for j, cont in enumerate(e.continuations):
        start = len(tokens)
        inputs = cont[:-1]  # the last token is only ever a target
        tokens += inputs
        positions += range(len(e.context), len(e.context) + len(inputs))
        segment += [j + 1] * len(inputs)
        targets.append(cont)
        predict_at.append([last_context] + list(range(start, start + len(inputs))))
    return Row(tokens, positions, segment, targets, predict_at)


def batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped by length (longest first) so each batch's padded size stays within
    ``batch_tokens`` (a row longer than that goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= batch_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def score_batch(model: nn.Module, rows: Sequence[Row], device: torch.device) -> list[list[float]]:
    """Each row's choices' log-likelihoods from one forward pass."""
    width = max(len(r.tokens) for r in rows)
    pad_id = 0
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)  # -1: padding
    for b, r in enumerate(rows):
        pad = width - len(r.tokens)  # left padding: every row's choices end at the last column
        tokens[b, pad:] = torch.tensor(r.tokens)
        positions[b, pad:] = torch.tensor(r.positions)
        segment[b, pad:] = torch.tensor(r.segment)
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]  # (query, key)
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]
    allowed = causal[None] & ((seg_k == 0) & (seg_q >= 0) | (seg_k == seg_q))
    dtype = next(model.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
    # only the columns from the earliest prediction on need logits (a row's choices are at its end)
    first_needed = min(width - len(r.tokens) + r.predict_at[0][0] for r in rows)
    keep = width - first_needed
    logits = model(input_ids=tokens.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   use_cache=False, logits_to_keep=keep).logits
    logits = logits.float()
    # log p(token) = logit - logsumexp(logits): no second (batch, positions, vocabulary) tensor
    normalizer = torch.logsumexp(logits, dim=-1)
    out = []
    for b, r in enumerate(rows):
        shift = width - len(r.tokens) - first_needed
        values = []
        for targets, at in zip(r.targets, r.predict_at):
            cols = torch.tensor(at, device=logits.device) + shift
            picked = logits[b, cols, torch.tensor(targets, device=logits.device)] - normalizer[b, cols]
            values.append(float(picked.sum()))
        out.append(values)
    return out


def score_items_naive(model: nn.Module, tokenizer: Any, items: Sequence[Any]) -> list[ItemScore]:
    """One forward pass per (context, choice), exactly lm-eval's loop with batch size 1."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.inference_mode():
            for item in items:
                lls = []
                for choice in item.choices:
                    ctx, cont = encode_pair(tokenizer, item.context, DELIMITER + choice)
                    inputs = torch.tensor([(ctx + cont)[:-1]], device=device)
                    logprobs = F.log_softmax(model(input_ids=inputs, use_cache=False).logits[0].float(), dim=-1)
                    picked = logprobs[-len(cont):].gather(-1, torch.tensor(cont, device=device)[:, None])
                    lls.append(float(picked.sum()))
                scores.append(judge(lls, item.choices, item.gold))
    finally:
        model.train(was_training)
    return scores


@dataclass(frozen=True)
class TaskAccuracy:
    """A task's accuracy with its Wilson 95% interval (items are the sampling unit)."""

    n: int
    acc: float
    acc_low: float
    acc_high: float
    acc_norm: float
    acc_norm_low: float
    acc_norm_high: float


Z95 = 1.959963984540054  # the normal distribution's two-sided 95% quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (it stays inside [0, 1] and keeps
    its coverage near 0 and 1, where the normal interval does not)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def task_accuracy(scores: Sequence[ItemScore]) -> TaskAccuracy:
    n = len(scores)
    right, right_norm = sum(s.acc for s in scores), sum(s.acc_norm for s in scores)
    low, high = wilson(right, n)
    low_norm, high_norm = wilson(right_norm, n)
    return TaskAccuracy(n, right / n if n else math.nan, low, high,
                        right_norm / n if n else math.nan, low_norm, high_norm)


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of two methods on the same items: ``only_a`` items only method A got
    right, ``only_b`` only B; ``p`` is the exact two-sided McNemar test (binomial on the
    discordant items)."""

    n: int
    only_a: int
    only_b: int
    p: float


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """The exact McNemar test of two methods' per-item correctness (the same items, in order)."""
    if len(a) != len(b):
        raise ValueError(f"paired items differ in number: {len(a)} and {len(b)}")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    return McNemar(len(a), only_a, only_b, exact_binomial_two_sided(min(only_a, only_b), only_a + only_b))


def exact_binomial_two_sided(k: int, n: int) -> float:
    """2 * P(X <= k) for X ~ Binomial(n, 1/2), capped at 1 (k is the smaller count)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)
