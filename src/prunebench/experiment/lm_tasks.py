"""A language-model run's zero-shot task scores (``evaluation.tasks``), as stored in result.json."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from torch import nn

from prunebench.record import TaskScore


def task_items(tasks: Sequence[str], limit: int | None) -> dict[str, tuple[Any, ...]]:
    """The items each task scores: its first ``limit`` (all with None). Reading them is what fails,
    in one line, when the Wikipedia wheel is missing."""
    from prunebench.data.wiki_tasks import capped

    return {task: capped(task, limit) for task in tasks}


def items_sha256(items: Sequence[Any]) -> str:
    """What the items are: a run pairs with another only on the very same questions."""
    text = json.dumps([[i.task, i.id, i.context, list(i.choices), i.gold] for i in items], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def evaluate_tasks(model: nn.Module, tokenizer: Any, tasks: Sequence[str], limit: int | None) -> dict[str, TaskScore]:
    """Each task's lm-eval accuracy (acc, acc_norm) with Wilson intervals and per-item outcomes."""
    from prunebench.metrics.choice import score_items, task_accuracy

    out = {}
    for task, items in task_items(tasks, limit).items():
        scores = score_items(model, tokenizer, items)
        acc = task_accuracy(scores)
        out[task] = TaskScore(
            n=acc.n, acc=acc.acc, acc_low=acc.acc_low, acc_high=acc.acc_high, acc_norm=acc.acc_norm,
            acc_norm_low=acc.acc_norm_low, acc_norm_high=acc.acc_norm_high, items_sha256=items_sha256(items),
            correct="".join("1" if s.acc else "0" for s in scores),
            correct_norm="".join("1" if s.acc_norm else "0" for s in scores),
        )
    return out


def tasks_current(cached: Any, tasks: Sequence[str], limit: int | None) -> bool:
    """Whether cached dense scores (dense.json's "tasks") are of exactly these tasks' items."""
    if not tasks:
        return True
    if not isinstance(cached, dict) or set(cached) != set(tasks):
        return False
    items = task_items(tasks, limit)
    return all(isinstance(cached[t], dict) and cached[t].get("items_sha256") == items_sha256(items[t]) for t in tasks)


def tasks_from_json(data: Any) -> dict[str, TaskScore] | None:
    """Scores cached in dense.json (None where none are)."""
    if not isinstance(data, dict):
        return None
    return {task: TaskScore.model_validate(score) for task, score in data.items()}
