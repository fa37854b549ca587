"""The papers' perplexity protocol (Wanda's ``eval_ppl``, SparseGPT's ``llama_eval``) against a
direct re-implementation of their loop, on WikiText-2-shaped raw files a user provides and a
tiny random Llama built here; and its one-line refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

pytest.importorskip("transformers")

from lm_tiny import tiny_llama, tiny_tokenizer  # noqa: E402
from prunebench.cli import main  # noqa: E402
from prunebench.data.text import load_text  # noqa: E402
from prunebench.errors import ConfigError, DataError  # noqa: E402
from prunebench.metrics.perplexity import papers_perplexity, papers_windows  # noqa: E402
from prunebench.record import read_result  # noqa: E402

SEQ_LEN = 32

# The rows `datasets` gives for WikiText-2 raw: each line with its newline, blank lines empty.
TEST_ROWS = [
    "", " = Robert Boulter = \n", "",
    " Robert Boulter is an English film , television and theatre actor . He had a guest role in 2000 .\n",
    " In 2006 he starred alongside Whishaw in the play Herons , written by Simon Stephens .\n", "",
    " = = Career = = \n", "", " He appeared on a 2002 episode of the television series The Bill .\n",
    " He then played a role in the play Mercury Fur , at the Drum Theatre in Plymouth .\n", "",
]
TRAIN_ROWS = ["", " = Valkyria Chronicles III = \n", "", " Senjo no Valkyria 3 is a tactical role game .\n"] * 6


def raw_file(rows: list[str]) -> str:
    """The raw file those rows came from: a blank row is an empty line."""
    return "".join(row or "\n" for row in rows)


def reference_ppl(model: nn.Module, tokenizer: Any, rows: list[str], seqlen: int) -> float:
    """Wanda's eval_ppl_wikitext (lib/eval.py, batch size 1), as written there."""
    testenc = tokenizer("\n\n".join(rows), return_tensors="pt").input_ids
    nsamples = testenc.numel() // seqlen
    nlls = []
    with torch.no_grad():
        for i in range(nsamples):
            inputs = testenc[:, (i * seqlen):((i + 1) * seqlen)]
            lm_logits = model(inputs).logits
            shift_logits = lm_logits[:, :-1, :].contiguous()
            shift_labels = inputs[:, 1:]
            loss = nn.CrossEntropyLoss()(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1))
            nlls.append(loss.float() * seqlen)
    return torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_llama(300, layers=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    (folder / "wikitext2").mkdir()
    (folder / "wikitext2" / "wiki.test.raw").write_text(raw_file(TEST_ROWS), encoding="utf-8")
    (folder / "wikitext2" / "wiki.train.raw").write_text(raw_file(TRAIN_ROWS), encoding="utf-8")
    return folder


def test_papers_protocol_equals_the_reference_loop(model: nn.Module, tokenizer: Any, data_dir: Path) -> None:
    splits = load_text("wikitext2", tokenizer, data_dir=data_dir, joined=True)
    expected = tokenizer("\n\n".join(TEST_ROWS), return_tensors="pt").input_ids[0]
    assert torch.equal(splits.evaluation, expected)  # the papers' text, tokenized as they do
    assert expected.numel() % SEQ_LEN and expected.numel() // SEQ_LEN >= 3  # a tail to drop, several windows
    result = papers_perplexity(model, splits.evaluation, seq_len=SEQ_LEN)
    assert result.value == pytest.approx(reference_ppl(model, tokenizer, TEST_ROWS, SEQ_LEN), rel=1e-5)
    assert result.protocol == "papers" and result.tokens_scored == (expected.numel() // SEQ_LEN) * (SEQ_LEN - 1)
    # batching the windows changes nothing
    assert papers_perplexity(model, splits.evaluation, seq_len=SEQ_LEN, batch_size=3).value == \
        pytest.approx(result.value, rel=1e-9)


def test_the_tail_is_dropped_and_a_cap_keeps_evenly_spaced_windows(model: nn.Module) -> None:
    tokens = torch.randint(0, 300, (10 * SEQ_LEN + 7,), generator=torch.Generator().manual_seed(0))
    whole = papers_perplexity(model, tokens, seq_len=SEQ_LEN)
    assert whole.value == papers_perplexity(model, tokens[:10 * SEQ_LEN], seq_len=SEQ_LEN).value
    assert [w.begin // SEQ_LEN for w in papers_windows(tokens.numel(), SEQ_LEN, 4)] == [0, 2, 5, 7]
    capped = papers_perplexity(model, tokens, seq_len=SEQ_LEN, max_tokens=4 * SEQ_LEN + 5)
    chosen = torch.cat([tokens[i * SEQ_LEN:(i + 1) * SEQ_LEN] for i in (0, 2, 5, 7)])
    assert capped.value == pytest.approx(papers_perplexity(model, chosen, seq_len=SEQ_LEN).value, rel=1e-9)
    assert capped.tokens_scored == 4 * (SEQ_LEN - 1)
    with pytest.raises(ConfigError, match="at least one window"):
        papers_perplexity(model, tokens[:SEQ_LEN - 1], seq_len=SEQ_LEN)


def test_a_local_wikitext2_needs_its_train_file(tmp_path: Path, tokenizer: Any) -> None:
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "wiki.test.raw").write_text(raw_file(TEST_ROWS), encoding="utf-8")
    with pytest.raises(DataError, match="wiki.train.raw"):
        load_text("wikitext2", tokenizer, data_dir=tmp_path, joined=True)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory, model: nn.Module, tokenizer: Any) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def lm_config(saved_model: Path, data_dir: Path, **evaluation: Any) -> dict[str, Any]:
    return {"model": f"hf:{saved_model}", "dataset": "wikitext2", "data_dir": str(data_dir), "threads": 1,
            "prune": {"strategy": "magnitude", "calibration": {"n_samples": 2, "seq_len": 16}},
            "evaluation": {"window": SEQ_LEN, **evaluation}}


def run(tmp: Path, data: dict[str, Any]) -> int:
    (tmp / "config.yaml").write_text(yaml.safe_dump(data))
    return main(["run", str(tmp / "config.yaml"), "--results", str(tmp / "results")])


def test_a_run_records_the_papers_perplexity(tmp_path: Path, saved_model: Path, data_dir: Path, model: nn.Module,
                                             tokenizer: Any) -> None:
    assert run(tmp_path, lm_config(saved_model, data_dir)) == 0
    (result,) = [read_result(p) for p in (tmp_path / "results").glob("*/result.json")]
    lm = result.language_model
    assert lm.protocol == "papers" and lm.window == lm.stride == SEQ_LEN
    assert result.dense_perplexity == pytest.approx(reference_ppl(model, tokenizer, TEST_ROWS, SEQ_LEN), rel=1e-5)


@pytest.fixture(scope="module")
def short_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An evaluation split shorter than one window of SEQ_LEN tokens."""
    folder = tmp_path_factory.mktemp("short")
    (folder / "wikitext2").mkdir()
    (folder / "wikitext2" / "wiki.test.raw").write_text(raw_file(TEST_ROWS[:2]), encoding="utf-8")
    (folder / "wikitext2" / "wiki.train.raw").write_text(raw_file(TRAIN_ROWS), encoding="utf-8")
    return folder


@pytest.mark.parametrize(("evaluation", "key", "short"), [
    ({"protocol": "wanda"}, "evaluation.protocol", False),
    ({"stride": 8}, "evaluation.stride", False),
    ({"tokens": 8}, "evaluation.tokens", False),
    ({"window": 300}, "evaluation.window", False),  # the model has 256 positions
    ({}, "evaluation.window", True),  # more than the whole evaluation split
])
def test_bad_evaluation_keys_are_one_line_and_write_nothing(tmp_path: Path, saved_model: Path, data_dir: Path,
                                                            short_data_dir: Path, evaluation: dict[str, Any], key: str,
                                                            short: bool, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, lm_config(saved_model, short_data_dir if short else data_dir, **evaluation)) == 2
    # transformers' own weight-loading progress bar may come before it on stderr
    (err,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prunebench:")]
    assert err.startswith(f"prunebench: error: {key}"), err
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # no results folder, no database
