"""`prunebench export`: a language-model run as a Hugging Face directory that transformers loads,
on the tiny random Llama of the pipeline tests (no download). The exported model gives exactly
the logits of the run's model (pretrained weights with the run's model.pt over them: bitwise
equal, not merely close) and the perplexity the run recorded, and its pruned weights are still
exactly zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from prunebench.cli import main  # noqa: E402
from prunebench.store.artifacts import load_tensors  # noqa: E402
from test_lm_pipeline import TEXT, tiny_llama  # noqa: E402

RECOVERY = {"steps": 2, "lr": 1e-3, "batch_tokens": 64}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pruned run and one pruned and recovered run of the tiny Llama, in one results folder."""
    root = tmp_path_factory.mktemp("export")
    (root / "play.txt").write_text(TEXT)
    model = tiny_llama(root / "tiny")
    base = {
        "model": f"hf:{model}", "dataset": f"text:{root / 'play.txt'}", "threads": 1,
        "prune": {"strategy": "wanda", "sparsity": 0.5, "calibration": {"n_samples": 4, "seq_len": 32}},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32},
    }
    ids = {}
    for name, extra in {"pruned": {}, "recovered": {"recovery": RECOVERY}}.items():
        config = root / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**base, **extra}))
        before = set((root / "results").glob("*/result.json"))
        assert main(["run", str(config), "--results", str(root / "results")]) == 0
        (new,) = set((root / "results").glob("*/result.json")) - before
        ids[name] = new.parent.name
    return {"root": root, "model": model, "results": root / "results", "ids": ids}


def run_model(runs: dict[str, Any], run_id: str) -> torch.nn.Module:
    """The run's model as the store keeps it, composed by hand: the pretrained checkpoint, then
    model.pt over it (pruned layers, or every weight after recovery)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(runs["model"], dtype=torch.float32).eval()
    stored = load_tensors(runs["results"] / run_id / "model.pt")
    missing, unexpected = model.load_state_dict(stored, strict=False)
    assert not unexpected
    return model


def export(runs: dict[str, Any], run: str, out: Path) -> int:
    return main(["export", run, "--results", str(runs["results"]), "--out", str(out)])


@pytest.mark.parametrize("which", ["pruned", "recovered"])
def test_the_export_loads_and_gives_the_runs_logits_exactly(runs: dict[str, Any], tmp_path: Path, which: str) -> None:
    run_id = runs["ids"][which]
    out = tmp_path / "hf"
    assert export(runs, run_id[:10], out) == 0  # a prefix names the run
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    exported = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    reference = run_model(runs, run_id)
    ids = tokenizer(TEXT[:200], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(exported(ids).logits, reference(ids).logits)
    # the tokenizer is the run's: the same ids for the same text
    original = transformers.AutoTokenizer.from_pretrained(runs["model"])
    assert tokenizer(TEXT)["input_ids"] == original(TEXT)["input_ids"]


def test_pruned_weights_are_exactly_zero_after_the_round_trip(runs: dict[str, Any], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run_id = runs["ids"]["recovered"]  # recovery moved every weight but the pruned ones
    assert export(runs, run_id, tmp_path / "hf") == 0
    weights = load_file(tmp_path / "hf" / "model.safetensors")
    mask = load_tensors(runs["results"] / run_id / "mask.pt")
    assert set(mask) <= set(weights)
    for name, keep in mask.items():
        assert torch.count_nonzero(weights[name][~keep]) == 0, name
        assert torch.count_nonzero(weights[name][keep]) == keep.sum(), name  # the kept ones are not zeroed
    assert 0.45 < sum(int((~k).sum()) for k in mask.values()) / sum(k.numel() for k in mask.values()) < 0.55


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
def test_the_export_gives_the_perplexity_the_run_recorded(runs: dict[str, Any], tmp_path: Path) -> None:
    """prunebench's own perplexity of the exported model (loaded as `hf:<export>`) on the run's
    evaluation tokens is the one the run measured on its model in memory, to the last bit."""
    from prunebench.data.text import load_text
    from prunebench.metrics.perplexity import perplexity
    from prunebench.record import read_result

    run_id = runs["ids"]["pruned"]
    assert export(runs, run_id, tmp_path / "hf") == 0
    result = read_result(runs["results"] / run_id / "result.json")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = load_text(f"text:{runs['root'] / 'play.txt'}", tokenizer, eval_tokens=result.spec["evaluation"]["tokens"])
    assert perplexity(model, text.evaluation, window=64, stride=32).value == result.perplexity


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_with_exit_2_and_nothing_written(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "hf"
    assert export(runs, "0123456789abcdef", out) == 2
    assert "no run '0123456789abcdef'" in one_line(capsys)
    assert export(runs, "", out) == 2
    assert "RUN" in one_line(capsys)
    assert main(["export", runs["ids"]["pruned"], "--results", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert "--results" in one_line(capsys)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert export(runs, runs["ids"]["pruned"], out) == 2
    error = one_line(capsys)
    assert "--out" in error and "not empty" in error
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert export(runs, runs["ids"]["pruned"], out / "keep.txt") == 2
    assert "--out" in one_line(capsys)
    # a prefix shared by both runs
    common = next(i for i in range(1, 64) if runs["ids"]["pruned"][:i] != runs["ids"]["recovered"][:i]) - 1
    if common:
        assert export(runs, runs["ids"]["pruned"][:common], tmp_path / "new") == 2
        assert "names 2 runs" in one_line(capsys)
    assert not (tmp_path / "new").exists() and not (tmp_path / "absent").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no staging folder left either


def test_a_classifier_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mlp.yaml"
    config.write_text(yaml.safe_dump({
        "model": "mlp", "dataset": "digits", "threads": 1,
        "train": {"epochs": 1}, "prune": {"strategy": "magnitude", "compression": 2}, "finetune": {"epochs": 0},
    }))
    assert main(["run", str(config), "--results", str(tmp_path / "results")]) == 0
    (result,) = (tmp_path / "results").glob("*/result.json")
    assert main(["export", result.parent.name, "--results", str(tmp_path / "results"), "--out", str(tmp_path / "hf")]) == 2
    assert "classifier" in one_line(capsys)
    assert not (tmp_path / "hf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]
