"""Top-1 / top-5 accuracy and loss over every example of a split exactly once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.data import Images, batches

EVAL_BATCH_SIZE = 1024


@dataclass(frozen=True)
class AccuracyMetrics:
    top1: float
    top5: float
    loss: float
    examples: int


@torch.no_grad()
def evaluate(model: nn.Module, x: Images, y: torch.Tensor, batch_size: int = EVAL_BATCH_SIZE) -> AccuracyMetrics:
    """Eval-mode accuracy; top-5 becomes top-k with k = number of classes when fewer than 5."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = 0
    loss_sum = 0.0
    try:
        keys = (slice(start, start + batch_size) for start in range(0, x.shape[0], batch_size))
        for inputs, target in batches(x, y, keys):
            logits = model(inputs)
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = top == target.unsqueeze(1)
            correct1 += int(hits[:, 0].sum())
            correct5 += int(hits.any(dim=1).sum())
    finally:
        model.train(was_training)
    n = x.shape[0]
    return AccuracyMetrics(top1=correct1 / n, top5=correct5 / n, loss=loss_sum / n, examples=n)
