"""Depth pruning of causal language models: block influence, angular distance and the random
control, checked against a hand computation on a tiny Llama; the blocks physically removed, and
masked to zero by a run (``prune.structure: depth``), which computes what the removal does."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.depth import (
    angular_distances, block_influence, block_statistics, blocks_for_fraction, choose_blocks, mask_depth,
    prune_depth, remove_blocks,
)
from prunebench.pruning.scores import STRATEGIES
from prunebench.pruning.scores.depth import DepthMethod

transformers = pytest.importorskip("transformers")

VOCAB = 97


def tiny_llama(layers: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128, attn_implementation="eager",
    )
    return transformers.LlamaForCausalLM(config).eval()


def tokens(n: int = 3, length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def boundaries_by_hand(model: nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    """x_0 .. x_L: the embeddings, then each block's output, run block by block with an explicit
    causal mask (eager attention adds it to the scores)."""
    inner = model.model
    length = ids.shape[1]
    h = inner.embed_tokens(ids)
    positions = torch.arange(length).unsqueeze(0)
    rotary = inner.rotary_emb(h, position_ids=positions)
    mask = torch.full((length, length), torch.finfo(torch.float32).min).triu(1)[None, None].expand(ids.shape[0], 1, -1, -1)
    states = [h]
    with torch.no_grad():
        for layer in inner.layers:
            out = layer(states[-1], attention_mask=mask, position_embeddings=rotary, position_ids=positions)
            states.append(out[0] if isinstance(out, tuple) else out)
    return states


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def test_block_influence_matches_a_hand_computation() -> None:
    model, ids = tiny_llama(), tokens()
    states = boundaries_by_hand(model, ids)
    expected = torch.stack([1 - cosine(states[i], states[i + 1]).mean() for i in range(5)])
    got = block_influence(block_statistics(model, ids, batch_size=2))
    assert torch.allclose(got, expected, atol=1e-6), (got, expected)
    lowest = sorted(torch.argsort(expected)[:2].tolist())
    assert choose_blocks(model, "block_influence", 2, ids) == lowest


def test_angular_distance_matches_a_hand_computation() -> None:
    model, ids = tiny_llama(), tokens()
    states = boundaries_by_hand(model, ids)
    stats = block_statistics(model, ids, batch_size=2)
    for n in (1, 2, 3):
        expected = torch.stack([
            (torch.arccos(cosine(states[start][:, -1], states[start + n][:, -1]).clamp(-1, 1)) / math.pi).mean()
            for start in range(5 - n + 1)])
        got = angular_distances(stats, n)
        assert torch.allclose(got, expected, atol=1e-6), (n, got, expected)
        start = int(torch.argmin(expected))
        assert choose_blocks(model, "angular_distance", n, ids) == list(range(start, start + n))


def test_random_control_is_drawn_by_the_seed() -> None:
    model = tiny_llama(layers=8)
    first = choose_blocks(model, "random_block", 3, seed=1)
    assert first == choose_blocks(model, "random_block", 3, seed=1) and len(set(first)) == 3
    assert {tuple(choose_blocks(model, "random_block", 3, seed=s)) for s in range(6)} != {tuple(first)}
    depth = {n for n in STRATEGIES.names() if isinstance(STRATEGIES.get(n), DepthMethod)}
    assert depth == {"angular_distance", "block_influence", "random_block"}
    for name in depth:  # language models only, under the depth structure alone, blocks compared model-wide
        method = STRATEGIES.get(name)
        assert method.form("classifier") is None
        form = method.form("language_model")
        assert form is not None and form.structures == ("depth",) and form.scopes == ("global",)


def model_built_by_hand(dense: nn.Module, kept: list[int]) -> nn.Module:
    """A fresh Llama with len(kept) blocks, its weights copied from ``dense``'s kept blocks."""
    config = dense.config.to_dict()
    config["num_hidden_layers"] = len(kept)
    config["attn_implementation"] = dense.config._attn_implementation  # to_dict leaves it out
    small = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).eval()
    state = {}
    for name, value in dense.state_dict().items():
        parts = name.split(".")
        if parts[:2] == ["model", "layers"]:
            if int(parts[2]) not in kept:
                continue
            parts[2] = str(kept.index(int(parts[2])))
        state[".".join(parts)] = value
    small.load_state_dict(state)
    return small


def test_removed_model_equals_one_built_without_those_blocks(tmp_path: Path) -> None:
    dense = tiny_llama(layers=6)
    ids = tokens()
    by_hand = model_built_by_hand(dense, [0, 2, 3, 5])
    pruned = remove_blocks(dense, [1, 4])
    assert len(pruned.model.layers) == 4 and pruned.config.num_hidden_layers == 4
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1, 2, 3]
    with torch.no_grad():
        logits = pruned(input_ids=ids).logits
        assert torch.equal(logits, by_hand(input_ids=ids).logits)
        # the key-value cache: greedy generation matches the hand-built model's, token for token
        prompt = ids[:1, :5]
        out = pruned.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert torch.equal(out, by_hand.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0))
    pruned.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.num_hidden_layers == 4
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, logits, atol=1e-5)


def test_targets_and_their_errors() -> None:
    model = tiny_llama(layers=8)
    assert blocks_for_fraction(model, 0.25) == 2 and blocks_for_fraction(model, 0.5) == 4
    block_params = sum(p.numel() for p in model.model.layers[0].parameters())
    outcome = prune_depth(model, "block_influence", fraction=0.25, calibration=tokens())
    assert outcome.blocks_before == 8 and len(outcome.removed) == 2
    assert outcome.parameters_removed == 2 * block_params and len(model.model.layers) == 6
    with pytest.raises(ConfigError, match="between 1 and 5"):
        prune_depth(model, "random_block", blocks=6)
    with pytest.raises(ConfigError, match="exactly one target"):
        prune_depth(model, "random_block")
    with pytest.raises(ConfigError, match="does not choose decoder blocks"):
        prune_depth(model, "block_influnce", blocks=1, calibration=tokens())
    with pytest.raises(ConfigError, match="prune.sparsity"):
        blocks_for_fraction(model, 1.0)


@pytest.mark.parametrize("strategy", ["block_influence", "angular_distance", "random_block"])
def test_masked_blocks_compute_what_the_removed_model_computes(strategy: str) -> None:
    """A block whose Linear weights are all zero passes its input on unchanged (its attention and
    MLP outputs go through o_proj and down_proj, which carry no bias), so the masked model is the
    shorter one: the logits agree, and the mask prunes exactly the chosen blocks' weights."""
    model, ids = tiny_llama(layers=6), tokens()
    outcome, removed = mask_depth(model, ids, strategy, sparsity=0.5, seed=3)
    assert len(removed) == 3 and removed == sorted(removed)
    for name, keep in outcome.mask.items():
        block = int(name.split(".")[2])
        assert bool(keep.all()) == (block not in removed) and bool(keep.any()) == (block not in removed), name
        weight = model.get_parameter(name)
        assert (weight[~keep] == 0).all()
    assert sum(outcome.layer_sparsity.values()) == 3 * 7  # 7 Linear layers in each removed block
    short = remove_blocks(copy.deepcopy(model), removed)
    with torch.no_grad():
        assert torch.allclose(short(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_a_bias_on_an_output_projection_is_refused() -> None:
    model = tiny_llama(layers=4)
    model.model.layers[0].self_attn.o_proj.bias = nn.Parameter(torch.zeros(32))
    with pytest.raises(ConfigError, match="o_proj has a bias"):
        mask_depth(model, tokens(), "random_block", sparsity=0.5)


# ---------------------------------------------------------------------------------------------
# From a config, end to end (prunebench run on a tiny Llama saved in the test)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from lm_tiny import tiny_llama as tiny_lm, tiny_tokenizer
    from test_lm_width import TEXT

    root = tmp_path_factory.mktemp("depth")
    tiny_lm(layers=4).save_pretrained(root / "tiny")  # the tokenizer's 300-token vocabulary
    tiny_tokenizer().save_pretrained(root / "tiny")
    (root / "play.txt").write_text(TEXT)
    return {"model": root / "tiny", "text": root / "play.txt"}


def depth_config(saved: dict[str, Path], **prune: object) -> dict[str, object]:
    return {
        "model": f"hf:{saved['model']}", "dataset": f"text:{saved['text']}", "threads": 1,
        "prune": {"strategy": "block_influence", "structure": "depth", "sparsity": 0.5,
                  "calibration": {"n_samples": 4, "seq_len": 32}, **prune},
        "evaluation": {"protocol": "sliding", "window": 64, "stride": 32},
    }


def test_a_depth_config_runs_end_to_end_and_stores_the_shorter_model(saved: dict[str, Path], tmp_path: Path) -> None:
    from test_lm_width import run_config

    from prunebench.record import read_result
    from prunebench.store.artifacts import load_tensors

    assert run_config(tmp_path, depth_config(saved)) == 0
    (result,) = [read_result(p) for p in sorted((tmp_path / "results").glob("*/result.json"))]
    assert result.sizes.sparsity == pytest.approx(0.5, abs=1e-9)  # 2 of 4 blocks, every Linear weight of each
    run_dir = tmp_path / "results" / result.run_id
    short = transformers.LlamaForCausalLM.from_pretrained(run_dir / "compact").eval()
    assert short.config.num_hidden_layers == 2
    masked = transformers.LlamaForCausalLM.from_pretrained(saved["model"]).eval()
    masked.load_state_dict(load_tensors(run_dir / "model.pt"), strict=False)  # the stored masked weights
    ids = tokens(2, 24, seed=2)
    with torch.no_grad():
        assert torch.allclose(short(input_ids=ids).logits, masked(input_ids=ids).logits, atol=1e-5, rtol=0)
    assert result.perplexity is not None and math.isfinite(result.perplexity)


@pytest.mark.parametrize(("prune", "message"), [
    ({"strategy": "wanda"}, r"prune.strategy 'wanda' does not prune language models under prune.structure 'depth'"),
    ({"structure": "unstructured"}, r"prune.strategy 'block_influence' does not prune language models under "
                                    r"prune.structure 'unstructured' \(it prunes: depth\)"),
    ({"sparsity": 0.95}, r"the block count must be between 1 and 3"),
    ({"scope": "layer"}, r"prune.scope 'layer'"),
    ({"allocation": "owl"}, r"prune.allocation 'owl'"),
])
def test_bad_depth_input_is_one_line_and_writes_nothing(saved: dict[str, Path], tmp_path: Path,
                                                       prune: dict[str, object], message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from test_lm_width import run_config

    assert run_config(tmp_path, depth_config(saved, **prune)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench: error: ") and "\n" not in err and re.search(message, err), err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("result.json"))
