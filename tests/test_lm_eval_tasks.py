"""The zero-shot tasks written as lm-eval task files: what lm-eval reads is what prunebench scores."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main
from prunebench.data import wikipedia
from prunebench.data.lm_eval_tasks import task_name, write_lm_eval_tasks
from prunebench.data.wiki_tasks import TASKS, capped
from prunebench.errors import ConfigError

needs_wheel = pytest.mark.skipif(importlib.util.find_spec(wikipedia.PACKAGE) is None,
                                 reason=f"needs {wikipedia.INSTALL}")


@needs_wheel
def test_files_hold_the_items_prunebench_scores(tmp_path: Path) -> None:
    written = write_lm_eval_tasks(tmp_path / "tasks", limit=7)
    assert len(written) == 2 * len(TASKS) + 1
    for task in TASKS:
        config = yaml.safe_load((tmp_path / "tasks" / f"{task_name(task)}.yaml").read_text())
        assert config["task"] == task_name(task) and config["output_type"] == "multiple_choice"
        assert config["target_delimiter"] == " " and config["num_fewshot"] == 0
        assert (config["doc_to_text"], config["doc_to_choice"], config["doc_to_target"]) == ("context", "choices", "gold")
        data = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert data.is_absolute() and data.parent == (tmp_path / "tasks").resolve()
        docs = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
        items = capped(task, 7)
        assert [(d["id"], d["context"], tuple(d["choices"]), d["gold"]) for d in docs] == [
            (i.id, i.context, i.choices, i.gold) for i in items]
    group = yaml.safe_load((tmp_path / "tasks" / "prunebench_wiki.yaml").read_text())
    assert group["task"] == [task_name(t) for t in TASKS]


@needs_wheel
def test_the_command_writes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "--out", str(tmp_path / "t"), "--task", "cloze", "--items", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "prunebench_wiki.yaml", "prunebench_wiki_cloze.jsonl", "prunebench_wiki_cloze.yaml"]
    assert len((tmp_path / "t" / "prunebench_wiki_cloze.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(("argv", "key"), [(["--task", "trivia"], "unknown task 'trivia'"),
                                           (["--items", "0"], "items: must be at least 1")])
def test_bad_values_are_one_line_and_write_nothing(tmp_path: Path, argv: list[str], key: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "--out", str(tmp_path / "t"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and key in err and "\n" not in err
    assert not (tmp_path / "t").exists()


def test_unknown_task_in_the_function() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        write_lm_eval_tasks("unused", ["nope"])


@needs_wheel
@pytest.mark.slow
def test_lm_eval_reads_the_files_and_agrees(tmp_path: Path) -> None:
    """lm-eval, given the written files and a saved tiny model, scores every choice as prunebench does."""
    lm_eval = pytest.importorskip("lm_eval")
    transformers = pytest.importorskip("transformers")
    from lm_eval.tasks import TaskManager
    from lm_tiny import tiny_llama, tiny_tokenizer

    from prunebench.metrics.choice import score_items

    model, tokenizer = tiny_llama(), tiny_tokenizer()
    model.config.max_position_embeddings = 2048  # open_book's contexts in the tiny vocabulary are long
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    write_lm_eval_tasks(tmp_path / "tasks", limit=4)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tmp_path / 'model'},dtype=float32",
                                  tasks=["prunebench_wiki"], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
                                  batch_size=1, device="cpu", log_samples=True)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype="float32").eval()
    for task in TASKS:
        scores = score_items(loaded, tokenizer, capped(task, 4))
        samples = sorted(out["samples"][task_name(task)], key=lambda s: s["doc_id"])
        assert len(samples) == len(scores) == 4
        for sample, score in zip(samples, scores):
            theirs = [float(r[0][0]) for r in sample["resps"]]
            assert theirs == pytest.approx(list(score.loglikelihoods), abs=1e-4)
        result = out["results"][task_name(task)]
        assert result["acc,none"] == pytest.approx(sum(s.acc for s in scores) / 4)
        assert result["acc_norm,none"] == pytest.approx(sum(s.acc_norm for s in scores) / 4)


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    assert main(["tasks", "--out", str(tmp_path / "afile"), "--items", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: --out") and "\n" not in err
    assert (tmp_path / "afile").read_text() == "x"
