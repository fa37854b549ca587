"""LoRA recovery (``recovery.method: lora``) on tiny random Llamas: it lowers the evaluation
perplexity below no recovery, the merged weights are exactly zero where pruned and compute what
was trained, its cost is recorded, and bad values are refused in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from lm_tiny import tiny_llama  # noqa: E402
from test_lm_pipeline import TEXT, config, results_of, run, snapshot  # noqa: E402
from test_lm_pipeline import tiny_llama as tiny_llama_folder  # noqa: E402

from prunebench.experiment.lora import lora_adapters  # noqa: E402
from prunebench.pruning.layerwise import lm_prunable  # noqa: E402
from prunebench.spec import RecoverySpec  # noqa: E402
from prunebench.store.artifacts import load_tensors  # noqa: E402

@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    text = root / "play.txt"
    text.write_text(TEXT)
    return {"model": tiny_llama_folder(root / "tiny"), "text": text, "root": root}


LORA = {"method": "lora", "steps": 12, "lr": 1e-2, "batch_tokens": 128, "rank": 4, "alpha": 8}


def test_lora_recovery_lowers_the_perplexity_and_holds_the_mask(setup: dict[str, Path], tmp_path: Path) -> None:
    assert run(tmp_path, config(setup, prune={"strategy": "magnitude"}, recovery=LORA)) == 0
    (result,) = results_of(tmp_path)
    assert result.perplexity < 0.9 * result.pre_finetune_perplexity  # recovered, by more than noise
    recovery = result.language_model.recovery
    assert recovery["method"] == "lora" and recovery["rank"] == 4 and recovery["alpha"] == 8
    assert len(recovery["loss"]) == 12 and recovery["seconds"] > 0
    # rank x (in + out) per adapted Linear: q and o 32 -> 32, k and v 32 -> 16 (2 key/value heads
    # of 8), gate and up 32 -> 64, down 64 -> 32; seven per block, two blocks
    assert recovery["adapted_layers"] == 14
    assert recovery["trainable_parameters"] == 2 * 4 * (64 + 64 + 48 + 48 + 96 + 96 + 96)
    folder = tmp_path / "results" / result.run_id
    mask, weights = load_tensors(folder / "mask.pt"), load_tensors(folder / "model.pt")
    assert not any("lora" in name for name in weights)  # merged: the adapters are gone
    for name, keep in mask.items():
        assert torch.count_nonzero(weights[name][~keep]) == 0  # exactly zero where pruned
        assert torch.count_nonzero(weights[name][keep]) == keep.sum()


def test_full_recovery_records_its_cost_too(setup: dict[str, Path], tmp_path: Path) -> None:
    change = {"steps": 2, "lr": 1e-3, "batch_tokens": 64}
    assert run(tmp_path, config(setup, prune={"strategy": "magnitude"}, recovery=change)) == 0
    (result,) = results_of(tmp_path)
    recovery = result.language_model.recovery
    assert recovery["method"] == "full" and recovery["seconds"] > 0 and "rank" not in recovery
    assert recovery["trainable_parameters"] == tiny_parameter_count(setup)


def tiny_parameter_count(setup: dict[str, Path]) -> int:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(setup["model"])
    return sum(p.numel() for p in model.parameters())


def test_the_merged_model_computes_what_the_adapters_trained() -> None:
    model = tiny_llama()
    prunable = lm_prunable(model)
    generator = torch.Generator().manual_seed(0)
    mask = {name: torch.rand(w.shape, generator=generator) < 0.5 for name, w in prunable.items()}
    with torch.no_grad():
        for name, weight in prunable.items():
            weight.mul_(mask[name])
    tokens = torch.randint(0, 300, (2, 16), generator=generator)
    names = list(model.state_dict())
    with torch.no_grad():
        pruned = model(tokens).logits
    with lora_adapters(model, mask, RecoverySpec(method="lora", rank=2), prunable) as adapters:
        assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:  # as if trained: B starts at zero
                    param.normal_(std=0.5, generator=generator)
            adapted = model(tokens).logits
    assert adapters.layers[0] == "model.layers.0.self_attn.q_proj" and len(adapters.layers) == 14
    assert not torch.allclose(adapted, pruned, atol=1e-3)  # the adapters change the function
    with torch.no_grad():
        merged = model(tokens).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    assert list(model.state_dict()) == names and all(p.requires_grad for p in model.parameters())
    for name, weight in lm_prunable(model).items():
        assert torch.count_nonzero(weight[~mask[name]]) == 0


def test_a_failed_recovery_removes_the_adapters_unmerged() -> None:
    model = tiny_llama()
    prunable = lm_prunable(model)
    before = {name: w.detach().clone() for name, w in model.state_dict().items()}
    mask = {name: torch.ones_like(w, dtype=torch.bool) for name, w in prunable.items()}
    with pytest.raises(RuntimeError, match="diverged"):
        with lora_adapters(model, mask, RecoverySpec(method="lora"), prunable):
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.data.fill_(1.0)
            raise RuntimeError("diverged")
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[n], before[n]) for n in before)


@pytest.mark.parametrize(
    ("recovery", "key"),
    [
        ({"method": "qlora"}, "recovery.method"),
        ({"method": "lora", "rank": 0}, "recovery.rank"),
        ({"method": "lora", "alpha": 0.5}, "recovery.alpha"),
        ({"method": "lora", "target_modules": []}, "recovery.target_modules"),
        ({"method": "lora", "target_modules": ["q_proj", "q_proj"]}, "recovery.target_modules"),
        ({"method": "lora", "target_modules": ["lm_head"]}, "recovery.target_modules"),  # not a pruned layer
        ({"method": "lora", "target_modules": ["no_such_proj"]}, "recovery.target_modules"),
        ({"rank": 4}, "recovery.rank"),  # method full reads no rank
    ],
)
def test_bad_lora_values_are_one_line_and_write_nothing(
    setup: dict[str, Path], tmp_path: Path, recovery: dict[str, Any], key: str, capsys: pytest.CaptureFixture[str],
) -> None:
    data = config(setup, recovery={"steps": 2, "batch_tokens": 64, **recovery})
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert run(tmp_path, data) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"prunebench: error: {key}") and "\n" not in err, err
    assert snapshot(tmp_path) == {**before, "config.yaml": (tmp_path / "config.yaml").read_bytes()}
