"""Pruning a language model block by block from its safetensors files gives the whole-model
driver's masks and weights, writes a checkpoint transformers loads, and refuses what it cannot do."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from lm_tiny import tiny_llama
from prunebench.errors import ConfigError
from prunebench.pruning.blockwise import INDEX_FILE, prune_checkpoint, read_mask
from prunebench.pruning.layerwise import lm_prunable, prune_causal_lm

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")
pytest.importorskip("accelerate")

VOCAB = 300


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A 3-block tiny Llama and its checkpoint in several safetensors shards."""
    model = tiny_llama(VOCAB, layers=3)
    folder = tmp_path_factory.mktemp("tiny") / "checkpoint"
    model.save_pretrained(folder, max_shard_size="40KB")
    assert len(list(folder.glob("*.safetensors"))) > 1  # the shards are read by name, across files
    return model, folder


def calibration() -> torch.Tensor:
    return torch.randint(0, VOCAB, (5, 16), generator=torch.Generator().manual_seed(0))


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
@pytest.mark.parametrize("strategy", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("target", [{"sparsity": 0.5}, {"structure": "2:4"}], ids=["unstructured", "2:4"])
def test_block_by_block_is_the_whole_model_driver(saved: tuple[torch.nn.Module, Path], tmp_path: Path,
                                                  strategy: str, target: dict) -> None:
    model, folder = saved
    whole = copy.deepcopy(model)
    expected = prune_causal_lm(whole, calibration(), strategy, batch_size=2, seed=3, **target)
    outcome = prune_checkpoint(folder, tmp_path / "pruned", calibration(), strategy, batch_size=2, seed=3, **target)

    mask = read_mask(outcome.folder)
    assert set(mask) == set(expected.mask) == set(lm_prunable(model))
    for name, keep in expected.mask.items():
        assert torch.equal(mask[name], keep), name
    assert outcome.layer_sparsity == expected.layer_sparsity
    assert all(0.45 < s < 0.55 for s in outcome.layer_sparsity.values())

    loaded = transformers.AutoModelForCausalLM.from_pretrained(outcome.folder).eval()
    pruned, reference = loaded.state_dict(), whole.state_dict()
    assert set(pruned) == set(reference)
    for name, tensor in reference.items():  # SparseGPT's updated weights too, bit for bit
        assert torch.equal(pruned[name], tensor), name
    probe = calibration()[:2]
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=probe).logits, whole(input_ids=probe).logits)


def test_random_control_draws_as_the_whole_model_driver(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, folder = saved
    expected = prune_causal_lm(copy.deepcopy(model), torch.zeros(0, dtype=torch.long), "random", sparsity=0.3, seed=5)
    outcome = prune_checkpoint(folder, tmp_path / "pruned", torch.zeros(0, dtype=torch.long), "random", sparsity=0.3, seed=5)
    mask = read_mask(outcome.folder)
    assert all(torch.equal(mask[name], keep) for name, keep in expected.mask.items())


def test_the_checkpoint_keeps_the_files_dtype(tmp_path: Path) -> None:
    model = tiny_llama(VOCAB, layers=2).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16")
    outcome = prune_checkpoint(tmp_path / "bf16", tmp_path / "pruned", calibration(), "wanda", sparsity=0.5)
    index = json.loads((outcome.folder / INDEX_FILE).read_text())
    assert len(set(index["weight_map"].values())) == 3  # the tensors outside the blocks, then one shard per block
    loaded = transformers.AutoModelForCausalLM.from_pretrained(outcome.folder, dtype="auto")
    weights = lm_prunable(loaded)
    mask = read_mask(outcome.folder)
    for name, keep in mask.items():
        assert weights[name].dtype == torch.bfloat16
        assert torch.all(weights[name][~keep] == 0) and torch.all(weights[name][keep] != 0), name
    embed = "model.embed_tokens.weight"
    assert torch.equal(loaded.state_dict()[embed], model.state_dict()[embed])  # copied through as it was


def test_what_needs_every_block_at_once_is_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, folder = saved
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    cases = [
        (dict(strategy="magnitude", sparsity=0.5, scope="global"), "prune.scope 'global'"),
        (dict(strategy="wanda", sparsity=0.5, out=tmp_path / "full"), "is not an empty folder"),
        (dict(strategy="magnitude", structure="2:3"), "M=3 does not divide"),
        (dict(strategy="wanda", sparsity=0.5, source=tmp_path / "nowhere"), "no such file or directory"),
        (dict(strategy="snip", sparsity=0.5), "does not prune language models"),
    ]
    for kwargs, message in cases:
        arguments = {"source": folder, "out": tmp_path / "out", "calibration": calibration(), **kwargs}
        with pytest.raises(ConfigError, match=message) as info:
            prune_checkpoint(**arguments)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
        assert not (tmp_path / "out").exists()  # nothing written


def test_the_command_line_writes_a_checkpoint_that_loads(saved: tuple[torch.nn.Module, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from lm_tiny import CORPUS, tiny_tokenizer

    from prunebench.cli import main

    model, folder = saved
    tiny_tokenizer().save_pretrained(tmp_path / "with-tokenizer")
    for path in folder.iterdir():
        (tmp_path / "with-tokenizer" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "corpus.txt").write_text(CORPUS * 20)
    base = ["prune-lm", f"hf:{tmp_path / 'with-tokenizer'}", "--dataset", f"text:{tmp_path / 'corpus.txt'}",
            "--n-samples", "4", "--seq-len", "16", "--threads", "1"]

    assert main([*base, "--out", str(tmp_path / "bad"), "--strategy", "wanda"]) == 2  # no sparsity
    assert capsys.readouterr().err.strip() == "prunebench: error: sparsity must be in (0, 1), got None"
    assert main([*base, "--out", str(tmp_path / "bad"), "--sparsity", "0.5", "--option", "blocksize"]) == 2
    assert "--option 'blocksize': give KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "pruned"
    assert main([*base, "--out", str(out), "--strategy", "sparsegpt", "--structure", "2:4", "--option", "blocksize=16"]) == 0
    assert "21 Linear layers pruned, 50.0% on average" in " ".join(capsys.readouterr().out.split())  # rich wraps
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer("to be or not to be")["input_ids"] == tiny_tokenizer()("to be or not to be")["input_ids"]
    for name, keep in read_mask(out).items():
        weight = lm_prunable(loaded)[name]
        assert torch.all(weight[~keep] == 0) and torch.all(keep.reshape(-1, 4).sum(dim=1) == 2), name
