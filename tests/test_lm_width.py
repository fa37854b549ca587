"""Width pruning of language models (prunebench.pruning.width): whole MLP channels and key/value
groups of a tiny random Llama with grouped-query attention (4 query heads, 2 key/value heads),
removed into a smaller dense model that equals the masked one and round-trips through
save_pretrained / from_pretrained; each width strategy against a hand computation; the GQA
constraint and the refusals of targets that break it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from prunebench.errors import ConfigError  # noqa: E402
from prunebench.pruning.scores import LANGUAGE_MODEL, STRATEGIES  # noqa: E402
from prunebench.pruning.scores.width import WidthMethod  # noqa: E402
from prunebench.pruning.width.compact import compact_width  # noqa: E402
from prunebench.pruning.width.layout import llama_blocks  # noqa: E402
from prunebench.pruning.width.prune import prune_width  # noqa: E402

WIDTH_METHODS = [n for n in STRATEGIES.names() if isinstance(STRATEGIES.get(n), WidthMethod)]
STRUCTURES = ["mlp_channels", "attention_heads", "width"]


def tiny(layers: int = 2, heads: int = 4, kv_heads: int = 2, seed: int = 0, vocab: int = 97) -> Any:
    """hidden 32, head size 8, intermediate 64: fewer key/value heads than query heads."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                      num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=8,
                                      max_position_embeddings=128)
    return transformers.LlamaForCausalLM(config).eval()


def tokens(seed: int, shape: tuple[int, int] = (4, 16)) -> torch.Tensor:
    return torch.randint(0, 97, shape, generator=torch.Generator().manual_seed(seed))


def logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_width_strategies_are_registered_for_language_models_only() -> None:
    assert set(WIDTH_METHODS) == {"magnitude_sp", "wanda_sp", "flap", "llm_pruner", "random_sp"}
    for name in WIDTH_METHODS:
        method = STRATEGIES.get(name)
        form = method.form(LANGUAGE_MODEL)
        assert method.kinds == (LANGUAGE_MODEL,) and form is not None and set(form.structures) == set(STRUCTURES)
    assert STRATEGIES.get("flap").form(LANGUAGE_MODEL).reconstructs  # its bias compensation
    # and the layer forms do not claim the width structures
    assert not set(STRUCTURES) & set(STRATEGIES.get("wanda").form(LANGUAGE_MODEL).structures)


@pytest.mark.parametrize("strategy", WIDTH_METHODS)
@pytest.mark.parametrize("structure", STRUCTURES)
def test_the_compact_model_equals_the_masked_one_and_round_trips(strategy: str, structure: str, tmp_path: Path) -> None:
    model = tiny()
    outcome = prune_width(model, tokens(0), strategy, structure=structure, sparsity=0.5, seed=0)
    ids = tokens(1, (2, 20))
    compact = compact_width(model, outcome.mask)
    assert torch.allclose(logits(compact, ids), logits(model, ids), atol=1e-5, rtol=0)
    config = compact.config
    expected = {"mlp_channels": (4, 2, 32), "attention_heads": (2, 1, 64), "width": (2, 1, 32)}[structure]
    assert (config.num_attention_heads, config.num_key_value_heads, config.intermediate_size) == expected
    assert sum(p.numel() for p in compact.parameters()) < sum(p.numel() for p in model.parameters())
    compact.save_pretrained(tmp_path)
    loaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(loaded, ids), logits(compact, ids), atol=1e-6, rtol=0)
    assert loaded.model.layers[1].mlp.down_proj.weight.shape == compact.model.layers[1].mlp.down_proj.weight.shape


def test_a_removed_key_value_group_takes_its_query_heads_along() -> None:
    model = tiny(layers=1)
    block = llama_blocks(model)[0]
    assert block.group_size == 2
    mask = prune_width(model, tokens(0), "magnitude_sp", structure="attention_heads", sparsity=0.5).mask
    k_rows = mask["model.layers.0.self_attn.k_proj.weight"].all(dim=1).reshape(2, 8).all(dim=1)
    q_heads = mask["model.layers.0.self_attn.q_proj.weight"].all(dim=1).reshape(4, 8).all(dim=1)
    o_heads = mask["model.layers.0.self_attn.o_proj.weight"].all(dim=0).reshape(4, 8).all(dim=1)
    assert int(k_rows.sum()) == 1
    # query heads 2g and 2g + 1 share key/value head g (transformers' repeat_kv)
    assert torch.equal(q_heads, k_rows.repeat_interleave(2)) and torch.equal(o_heads, q_heads)
    compact = compact_width(model, mask)
    assert compact.model.layers[0].self_attn.q_proj.out_features == 16
    assert compact.model.layers[0].self_attn.num_key_value_groups == 2


def test_a_mask_that_splits_a_group_or_differs_between_blocks_is_refused() -> None:
    model = tiny()
    mask = dict(prune_width(model, tokens(0), "magnitude_sp", structure="attention_heads", sparsity=0.5).mask.items())
    split = {**mask, "model.layers.0.self_attn.q_proj.weight": mask["model.layers.0.self_attn.q_proj.weight"].clone()}
    split["model.layers.0.self_attn.q_proj.weight"][:8] = False  # one query head alone
    split["model.layers.0.self_attn.q_proj.weight"][8:] = True
    with pytest.raises(ValueError, match="a query head without its key/value group"):
        compact_width(model, split)
    uneven = {name: torch.ones_like(keep) if name.startswith("model.layers.1.") else keep for name, keep in mask.items()}
    with pytest.raises(ValueError, match="different widths in different blocks"):
        compact_width(model, uneven)


@pytest.mark.parametrize(("structure", "sparsity", "message"), [
    ("attention_heads", 0.2, r"^prune.sparsity: 0.2 removes no key/value group: with 2 groups a block's attention is "
                             r"pruned in steps of 1/2 \(0.5\)$"),
    ("attention_heads", 0.9, r"^prune.sparsity: 0.9 removes all 2 key/value groups of a block"),
    ("mlp_channels", 0.999, r"^prune.sparsity: 0.999 removes all 64 MLP channels of a block"),
])
def test_targets_that_break_the_structure_are_one_line(structure: str, sparsity: float, message: str) -> None:
    model = tiny()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ConfigError, match=message):
        prune_width(model, tokens(0), "magnitude_sp", structure=structure, sparsity=sparsity)
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())  # nothing pruned


def test_a_layer_strategy_and_a_non_uniform_allocation_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"prune.strategy 'wanda' does not score prune.structure 'width'.*wanda_sp"):
        prune_width(tiny(), tokens(0), "wanda", structure="width", sparsity=0.5)
    with pytest.raises(ConfigError, match=r"prune.allocation 'owl'"):
        prune_width(tiny(), tokens(0), "flap", structure="width", sparsity=0.5, allocation="owl")


def test_width_counts_parameters_of_the_whole_block() -> None:
    model = tiny(layers=1)
    outcome = prune_width(model, tokens(0), "random_sp", structure="width", sparsity=0.5)
    removed = sum(int((~keep).sum()) for keep in outcome.mask.values())
    total = sum(keep.numel() for keep in outcome.mask.values())
    # floor(0.5 * 2) = 1 group (1,536 weights), then 32 channels of 96: exactly half of 9,216
    assert (removed, total) == (4608, 9216)


# ---------------------------------------------------------------------------------------------
# Each strategy against a hand computation (one block, loops over units)


def kept_channels(mask: Any) -> torch.Tensor:
    return mask["model.layers.0.mlp.gate_proj.weight"].all(dim=1)


def kept_groups(mask: Any) -> torch.Tensor:
    return mask["model.layers.0.self_attn.k_proj.weight"].all(dim=1).reshape(2, 8).all(dim=1)


def top(scores: list[float], keep: int) -> torch.Tensor:
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[:keep]
    return torch.tensor([i in order for i in range(len(scores))])


def unit_weights(model: Any, group: int | None = None, channel: int | None = None) -> list[torch.Tensor]:
    """The weights of key/value group ``group`` or MLP channel ``channel`` of block 0, by hand."""
    attention, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    if channel is not None:
        return [mlp.gate_proj.weight[channel], mlp.up_proj.weight[channel], mlp.down_proj.weight[:, channel]]
    q = slice(16 * group, 16 * group + 16)
    kv = slice(8 * group, 8 * group + 8)
    return [attention.q_proj.weight[q], attention.k_proj.weight[kv], attention.v_proj.weight[kv],
            attention.o_proj.weight[:, q]]


def test_magnitude_sp_is_the_squared_l2_norm_of_a_units_weights() -> None:
    model = tiny(layers=1)
    dense = copy.deepcopy(model)
    mask = prune_width(model, tokens(0), "magnitude_sp", structure="width", sparsity=0.5).mask
    channels = [float(sum(w.detach().double().square().sum() for w in unit_weights(dense, channel=c))) for c in range(64)]
    groups = [float(sum(w.detach().double().square().sum() for w in unit_weights(dense, group=g))) for g in range(2)]
    assert torch.equal(kept_channels(mask), top(channels, 32)) and torch.equal(kept_groups(mask), top(groups, 1))


def inputs_of(model: Any, ids: torch.Tensor, short: str) -> torch.Tensor:
    """The (tokens, in) inputs of block 0's ``short`` projection over ``ids``, by a plain hook."""
    part = "self_attn" if short == "o_proj" else "mlp"
    seen: list[torch.Tensor] = []
    handle = getattr(getattr(model.model.layers[0], part), short).register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach().reshape(-1, args[0].shape[-1])))
    with torch.no_grad():
        model(input_ids=ids)
    handle.remove()
    return torch.cat(seen).double()


def test_wanda_sp_sums_wandas_score_over_a_units_output_columns() -> None:
    model, ids = tiny(layers=1), tokens(3)
    dense = copy.deepcopy(model)
    mask = prune_width(model, ids, "wanda_sp", structure="width", sparsity=0.5, batch_size=2).mask
    x_down, x_o = inputs_of(dense, ids, "down_proj"), inputs_of(dense, ids, "o_proj")
    down = dense.model.layers[0].mlp.down_proj.weight.detach().double()
    o = dense.model.layers[0].self_attn.o_proj.weight.detach().double()
    channels = [float((down[:, c].abs() * x_down[:, c].norm()).sum()) for c in range(64)]
    groups = [float(sum((o[:, j].abs() * x_o[:, j].norm()).sum() for j in range(16 * g, 16 * g + 16))) for g in range(2)]
    assert torch.equal(kept_channels(mask), top(channels, 32)) and torch.equal(kept_groups(mask), top(groups, 1))


def test_flap_scores_the_fluctuation_and_compensates_with_the_mean() -> None:
    model, ids = tiny(layers=1), tokens(4)
    dense = copy.deepcopy(model)
    mask = prune_width(model, ids, "flap", structure="width", sparsity=0.5, batch_size=3).mask
    x_down, x_o = inputs_of(dense, ids, "down_proj"), inputs_of(dense, ids, "o_proj")
    down, o = dense.model.layers[0].mlp.down_proj.weight.double(), dense.model.layers[0].self_attn.o_proj.weight.double()

    def wifv(x: torch.Tensor, w: torch.Tensor, j: int) -> float:  # sample variance x squared column norm
        values = x[:, j]
        variance = float(((values - values.mean()) ** 2).sum() / (len(values) - 1))
        return variance * float(w[:, j].square().sum())

    channels = [wifv(x_down, down, c) for c in range(64)]
    groups = [sum(wifv(x_o, o, j) ** 2 for j in range(16 * g, 16 * g + 16)) for g in range(2)]
    kept_c, kept_g = kept_channels(mask), kept_groups(mask)
    assert torch.equal(kept_c, top(channels, 32)) and torch.equal(kept_g, top(groups, 1))
    removed = ~kept_c
    expected = down[:, removed] @ x_down.mean(dim=0)[removed]
    assert torch.allclose(model.model.layers[0].mlp.down_proj.bias.double(), expected, atol=1e-5)
    o_removed = ~kept_g.repeat_interleave(16)
    expected_o = o[:, o_removed] @ x_o.mean(dim=0)[o_removed]
    assert torch.allclose(model.model.layers[0].self_attn.o_proj.bias.double(), expected_o, atol=1e-5)


def test_llm_pruner_sums_the_first_order_taylor_term_over_a_units_weights() -> None:
    model, ids = tiny(layers=1), tokens(5)
    dense = copy.deepcopy(model)
    mask = prune_width(model, ids, "llm_pruner", structure="width", sparsity=0.5, batch_size=4).mask
    loss = dense(input_ids=ids, labels=ids).loss
    loss.backward()

    def taylor(weights: list[torch.Tensor], grads: list[torch.Tensor]) -> float:
        return float(sum((w.double() * g.double()).abs().sum() for w, g in zip(weights, grads)))

    attention, mlp = dense.model.layers[0].self_attn, dense.model.layers[0].mlp
    channels = [taylor(unit_weights(dense, channel=c), [mlp.gate_proj.weight.grad[c], mlp.up_proj.weight.grad[c],
                                                        mlp.down_proj.weight.grad[:, c]]) for c in range(64)]
    groups = []
    for g in range(2):
        q, kv = slice(16 * g, 16 * g + 16), slice(8 * g, 8 * g + 8)
        grads = [attention.q_proj.weight.grad[q], attention.k_proj.weight.grad[kv], attention.v_proj.weight.grad[kv],
                 attention.o_proj.weight.grad[:, q]]
        groups.append(taylor(unit_weights(dense, group=g), grads))
    assert torch.equal(kept_channels(mask), top(channels, 32)) and torch.equal(kept_groups(mask), top(groups, 1))
    assert all(p.grad is None for p in model.parameters())  # the driver leaves no gradients behind


def test_the_random_control_follows_the_seed_and_reads_no_data() -> None:
    masks = []
    for seed, data in ((0, 0), (0, 1), (1, 0)):
        model = tiny()
        calls: list[int] = []
        handle = model.model.layers[0].register_forward_pre_hook(lambda *_, seen=calls: seen.append(1))
        masks.append(prune_width(model, tokens(data), "random_sp", structure="mlp_channels", sparsity=0.5, seed=seed).mask)
        handle.remove()
        assert calls == []
    same = all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    other = all(torch.equal(masks[0][n], masks[2][n]) for n in masks[0])
    assert same and not other


@pytest.mark.parametrize("strategy", WIDTH_METHODS)
def test_a_width_strategy_reads_calibration_data_exactly_when_it_declares_a_need(strategy: str) -> None:
    form = STRATEGIES.get(strategy).form(LANGUAGE_MODEL)
    assert form is not None
    model = tiny()
    calls: list[int] = []
    handle = model.model.layers[0].register_forward_pre_hook(lambda *_: calls.append(1))
    training = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    state = torch.random.get_rng_state()
    prune_width(model, tokens(0), strategy, structure="width", sparsity=0.5)
    handle.remove()
    assert (len(calls) == 0) == (form.needs == "nothing")
    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()][:len(flags)] == flags
    assert torch.equal(torch.random.get_rng_state(), state)


# ---------------------------------------------------------------------------------------------
# From a config, end to end (prunebench run on a tiny Llama saved in the test)


TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and "
        "arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. ") * 40


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lm_tiny import tiny_tokenizer

    root = tmp_path_factory.mktemp("width")
    tiny(vocab=300).save_pretrained(root / "tiny")  # tiny_tokenizer's vocabulary
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(root / "tiny")
    (root / "play.txt").write_text(TEXT)
    return {"model": root / "tiny", "text": root / "play.txt"}


def width_config(saved: dict[str, Path], **prune: Any) -> dict[str, Any]:
    return {
        "model": f"hf:{saved['model']}", "dataset": f"text:{saved['text']}", "threads": 1,
        "prune": {"strategy": "flap", "structure": "width", "sparsity": 0.5,
                  "calibration": {"n_samples": 4, "seq_len": 32}, **prune},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32},
    }


def run_config(tmp: Path, data: dict[str, Any]) -> int:
    import yaml

    from prunebench.cli import main

    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return main(["run", str(path), "--results", str(tmp / "results")])


def test_a_width_config_runs_end_to_end_and_stores_the_compact_model(saved: dict[str, Path], tmp_path: Path) -> None:
    from prunebench.record import read_result
    from prunebench.store.artifacts import load_tensors

    assert run_config(tmp_path, width_config(saved)) == 0
    (result,) = [read_result(p) for p in sorted((tmp_path / "results").glob("*/result.json"))]
    assert result.sizes.sparsity == pytest.approx(0.5, abs=1e-9)  # 4,608 of 9,216 weights in each block
    run_dir = tmp_path / "results" / result.run_id
    mask = load_tensors(run_dir / "mask.pt")
    compact = transformers.LlamaForCausalLM.from_pretrained(run_dir / "compact").eval()
    assert (compact.config.num_key_value_heads, compact.config.intermediate_size) == (1, 32)
    masked = tiny(vocab=300)  # the pretrained weights, then the stored masked weights and FLAP's biases
    stored = load_tensors(run_dir / "model.pt")
    for short in ("o_proj", "down_proj"):
        for layer in masked.model.layers:
            linear = getattr(layer.self_attn if short == "o_proj" else layer.mlp, short)
            linear.bias = torch.nn.Parameter(torch.zeros(linear.out_features))
    masked.load_state_dict(stored, strict=False)
    assert set(mask) <= set(stored) and any(name.endswith("down_proj.bias") for name in stored)
    ids = tokens(2, (2, 24))
    assert torch.allclose(logits(compact, ids), logits(masked, ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("prune", "message"), [
    ({"strategy": "wanda"}, r"prune.strategy 'wanda' does not prune language models under prune.structure 'width'"),
    ({"structure": "unstructured"}, r"prune.strategy 'flap' does not prune language models under prune.structure "
                                    r"'unstructured' \(it prunes: mlp_channels, attention_heads, width\)"),
    ({"structure": "attention_heads", "sparsity": 0.25}, r"prune.sparsity: 0.25 removes no key/value group"),
    ({"allocation": "owl"}, r"prune.allocation 'owl'"),
])
def test_bad_width_input_is_one_line_and_writes_nothing(saved: dict[str, Path], tmp_path: Path, prune: dict[str, Any],
                                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_config(tmp_path, width_config(saved, **prune)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and "\n" not in err and __import__("re").search(message, err), err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("result.json"))
