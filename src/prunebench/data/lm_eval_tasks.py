"""The zero-shot Wikipedia tasks as lm-evaluation-harness task files (``--include_path``).

For each task ``T`` the folder gets ``prunebench_wiki_T.jsonl`` (one item a line: ``id``,
``context``, ``choices``, ``gold``) and ``prunebench_wiki_T.yaml``, a ``multiple_choice`` task that
reads it through the ``json`` dataset builder with the context as the whole prompt, the choices as
continuations after lm-eval's default delimiter " ", zero shots and no description: exactly the
requests :mod:`prunebench.metrics.choice` scores, so lm-eval's ``acc`` and ``acc_norm`` on these
files are prunebench's on the same items. ``prunebench_wiki.yaml`` groups the four.

The YAML files name their JSONL by absolute path (lm-eval resolves a relative ``data_files``
path against the working directory, not the YAML's folder), so a moved folder is written again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from prunebench.data.wiki_tasks import TASKS, Item, capped
from prunebench.errors import ConfigError, DataError, either

PREFIX = "prunebench_wiki"
GROUP = PREFIX


def task_name(task: str) -> str:
    return f"{PREFIX}_{task}"


def task_yaml(task: str, data_file: Path) -> str:
    """The YAML of one task (written by hand: the values are fixed and JSON strings are YAML)."""
    lines = [
        f"task: {task_name(task)}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(data_file))}",
        "test_split: test",
        "output_type: multiple_choice",
        "doc_to_text: context",  # a column name: lm-eval takes the field as it is
        "doc_to_choice: choices",
        "doc_to_target: gold",
        'target_delimiter: " "',
        "num_fewshot: 0",
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        "  - metric: acc_norm",
        "    aggregation: mean",
        "    higher_is_better: true",
        "metadata:",
        "  version: 1.0",
    ]
    return "\n".join(lines) + "\n"


def group_yaml(tasks: Sequence[str]) -> str:
    return "\n".join([f"group: {GROUP}", "task:", *(f"  - {task_name(t)}" for t in tasks),
                      "metadata:", "  version: 1.0"]) + "\n"


def item_line(item: Item) -> str:
    return json.dumps({"id": item.id, "context": item.context, "choices": list(item.choices), "gold": item.gold},
                      ensure_ascii=False)


def write_lm_eval_tasks(out_dir: str | Path, tasks: Sequence[str] = TASKS, limit: int | None = None) -> list[Path]:
    """Write the task files of ``tasks`` (their first ``limit`` items each; all with None) into
    ``out_dir`` and return the paths written. Each file is replaced atomically."""
    for task in tasks:
        if task not in TASKS:
            raise ConfigError(f"tasks: unknown task {task!r}; choose from {either(TASKS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"items: must be at least 1, got {limit}")
    folder = Path(out_dir).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {folder} is a file, not a folder")
    items = {task: capped(task, limit) for task in tasks}  # every check before the first write
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, chosen in items.items():
        data = folder / f"{task_name(task)}.jsonl"
        written.append(write_text(data, "".join(item_line(i) + "\n" for i in chosen)))
        written.append(write_text(folder / f"{task_name(task)}.yaml", task_yaml(task, data)))
    written.append(write_text(folder / f"{GROUP}.yaml", group_yaml(list(tasks))))
    return written


def write_text(path: Path, text: str) -> Path:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    return path
