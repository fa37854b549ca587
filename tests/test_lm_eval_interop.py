"""lm-evaluation-harness on `prunebench export`'s output agrees with prunebench's own scorer.

A tiny random Llama with a character-level tokenizer is pruned by a run, exported, and the
Wikipedia zero-shot tasks are written as lm-eval task files; lm-eval's HFLM reads the export
and the task files (``include_path``) and scores the first items of each task. Its accuracy,
length-normalized accuracy and every item's outcome equal prunebench's on the same items, and
each choice's log-likelihood agrees to 1e-4 (lm-eval pads its batches, prunebench packs an
item's choices into one row, so the sums differ in the last bits). Skipped only where lm-eval or
the Wikipedia wheel is absent."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

transformers = pytest.importorskip("transformers")
pytest.importorskip("lm_eval", reason="lm-eval is not installed: pip install \"prunebench[lm-eval]\"")

from prunebench.cli import main  # noqa: E402
from prunebench.data import wikipedia  # noqa: E402
from prunebench.data.lm_eval_tasks import task_name, write_lm_eval_tasks  # noqa: E402
from prunebench.data.wiki_tasks import TASKS, capped  # noqa: E402
from test_lm_pipeline import TEXT, tiny_llama  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec(wikipedia.PACKAGE) is None, reason=f"needs {wikipedia.INSTALL}"),
]

ITEMS = 8  # per task


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pruned run of a tiny Llama (positions enough for an open-book lead, one character a
    token), exported as a Hugging Face directory."""
    root = tmp_path_factory.mktemp("interop")
    (root / "play.txt").write_text(TEXT)
    model = tiny_llama(root / "tiny", max_position_embeddings=4096)
    # lm-eval's HFLM needs an end-of-text token (its prefix for an empty context): the unknown one
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    tokenizer.eos_token = tokenizer.unk_token
    tokenizer.save_pretrained(model)
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({
        "model": f"hf:{model}", "dataset": f"text:{root / 'play.txt'}", "threads": 1,
        "prune": {"strategy": "wanda", "sparsity": 0.5, "calibration": {"n_samples": 4, "seq_len": 32}},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32},
    }))
    assert main(["run", str(config), "--results", str(root / "results")]) == 0
    (result,) = (root / "results").glob("*/result.json")
    assert main(["export", result.parent.name, "--results", str(root / "results"), "--out", str(root / "hf")]) == 0
    return root / "hf"


def lm_eval_samples(exported: Path, tasks_dir: Path) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the task files are local JSONL
    lm = HFLM(pretrained=str(exported), device="cpu", batch_size=4, dtype="float32")
    return simple_evaluate(model=lm, tasks=[task_name(t) for t in TASKS], limit=ITEMS, log_samples=True,
                           task_manager=TaskManager(include_path=str(tasks_dir)))


def test_lm_eval_gives_prunebench_accuracy_on_the_same_items(exported: Path, tmp_path: Path) -> None:
    from prunebench.metrics.choice import score_items
    from prunebench.models.lm import load_causal_lm

    write_lm_eval_tasks(tmp_path / "tasks", TASKS, limit=ITEMS)
    outcome = lm_eval_samples(exported, tmp_path / "tasks")
    loaded = load_causal_lm(f"hf:{exported}")  # prunebench's own loader and scorer
    for task in TASKS:
        items = capped(task, ITEMS)
        ours = score_items(loaded.model, loaded.tokenizer, items)
        theirs = sorted(outcome["samples"][task_name(task)], key=lambda s: s["doc_id"])
        assert [s["doc"]["id"] for s in theirs] == [i.id for i in items], task
        assert [bool(s["acc"]) for s in theirs] == [o.acc for o in ours], task
        assert [bool(s["acc_norm"]) for s in theirs] == [o.acc_norm for o in ours], task
        for sample, score in zip(theirs, ours):
            lls = [float(r[0]) for r in sample["filtered_resps"]]
            assert lls == pytest.approx(list(score.loglikelihoods), abs=1e-4), task
        metrics = outcome["results"][task_name(task)]
        assert metrics["acc,none"] == pytest.approx(sum(o.acc for o in ours) / len(ours), abs=1e-12), task
        assert metrics["acc_norm,none"] == pytest.approx(sum(o.acc_norm for o in ours) / len(ours), abs=1e-12), task
