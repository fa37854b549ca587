"""Perplexity over strided windows and prefill latency, on a tiny random Llama built here."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

pytest.importorskip("transformers")

from lm_tiny import tiny_llama  # noqa: E402
from prunebench.errors import ConfigError  # noqa: E402
from prunebench.metrics.lm_latency import (  # noqa: E402
    CPU_KERNELS,
    is_two_four,
    prefill_speed,
    semi_structured_copy,
    semi_structured_speed,
    sparse_kernels,
    weight_bytes,
)
from prunebench.metrics.perplexity import perplexity, windows  # noqa: E402

VOCAB = 64


@pytest.fixture(scope="module")
def model():
    return tiny_llama(VOCAB, layers=2)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, VOCAB, (100,), generator=torch.Generator().manual_seed(0))


def test_one_window_is_exp_of_mean_cross_entropy(model, tokens):
    with torch.no_grad():
        logits = model(input_ids=tokens[None]).logits[0]
    expected = math.exp(float(F.cross_entropy(logits[:-1].double(), tokens[1:])))
    result = perplexity(model, tokens, window=100, stride=100)
    assert result.value == pytest.approx(expected, rel=1e-6)
    assert result.tokens_scored == 99 and (result.window, result.stride) == (100, 100)


def test_strided_windows_score_each_token_once(model, tokens):
    for length, window, stride in [(100, 32, 8), (100, 32, 31), (100, 100, 1), (33, 32, 31), (5, 32, 16)]:
        targets = [p for w in windows(length, window, stride) for p in range(w.first_target, w.end)]
        assert targets == list(range(1, length))
        assert all(w.end - w.begin <= window and w.begin < w.first_target for w in windows(length, window, stride))
    # Disjoint windows (stride == window): the first token of each has no context and is not scored.
    targets = [p for w in windows(100, 32, 32) for p in range(w.first_target, w.end)]
    assert targets == [p for p in range(100) if p % 32]
    assert perplexity(model, tokens, window=32, stride=32).tokens_scored == 96
    # Hand computation: each window's new tokens scored with its own context.
    total = 0.0
    with torch.no_grad():
        for w in windows(100, 32, 8):
            logits = model(input_ids=tokens[None, w.begin:w.end]).logits[0].double()
            picked = logits[w.first_target - w.begin - 1: w.end - w.begin - 1]
            total += float(F.cross_entropy(picked, tokens[w.first_target:w.end], reduction="sum"))
    result = perplexity(model, tokens, window=32, stride=8)
    assert result.tokens_scored == 99
    assert result.value == pytest.approx(math.exp(total / 99), rel=1e-6)
    # More context changes the figure: the strided value is not the disjoint one.
    assert result.value != pytest.approx(perplexity(model, tokens, window=32, stride=32).value, rel=1e-6)


def test_batching_changes_nothing(model, tokens):
    one = perplexity(model, tokens, window=16, stride=16, batch_size=1)
    many = perplexity(model, tokens, window=16, stride=16, batch_size=4)
    assert many.value == pytest.approx(one.value, rel=1e-6) and many.tokens_scored == one.tokens_scored


def test_mode_is_restored_and_bad_windows_refused(model, tokens):
    model.train()
    perplexity(model, tokens[:20], window=10, stride=5)
    assert model.training
    model.eval()
    for window, stride in [(1, 1), (10, 0), (10, 11)]:
        with pytest.raises(ConfigError):
            perplexity(model, tokens, window=window, stride=stride)
    with pytest.raises(ConfigError, match="longer than the model's 256 positions"):
        perplexity(model, torch.zeros(300, dtype=torch.long), window=300, stride=300)
    with pytest.raises(ConfigError, match="at least 2 tokens"):
        perplexity(model, tokens[:1], window=10, stride=10)


def two_four(model):
    pruned = tiny_llama(VOCAB, layers=2)
    pruned.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer in pruned.model.layers:
            for linear in [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]:
                groups = linear.weight.view(linear.weight.shape[0], -1, 4)
                drop = groups.abs().argsort(-1)[..., :2]
                groups.scatter_(-1, drop, 0.0)
    return pruned


def test_prefill_speed_records_everything(model):
    pruned = two_four(model)
    threads = torch.get_num_threads()
    result = prefill_speed(model, pruned, batch_size=2, seq_len=16, threads=1, warmup=1, repeats=3)
    assert torch.get_num_threads() == threads
    for record, label in [(result.dense, "dense"), (result.pruned, "pruned")]:
        assert record.latency.model == label and record.latency.repeats == 3
        assert (record.latency.batch_size, record.seq_len, record.latency.threads) == (2, 16, 1)
        assert record.latency.dtype == "float32" and record.latency.runtime == "torch-eager"
        assert record.tokens_per_s == pytest.approx(32 / (record.latency.median_ms / 1000))
    assert result.speedup > 0 and result.speedup_q1 <= result.speedup <= result.speedup_q3
    assert result.kernels == CPU_KERNELS and "no sparse kernels" in sparse_kernels("cpu")
    assert result.to_dict()["pruned"]["seq_len"] == 16
    with pytest.raises(ConfigError):
        prefill_speed(model, pruned, seq_len=0)


def test_two_four_detection_and_weight_bytes(model):
    pruned = two_four(model)
    assert all(is_two_four(m.weight) for m in pruned.model.layers.modules() if isinstance(m, torch.nn.Linear))
    assert not is_two_four(model.model.layers[0].mlp.up_proj.weight)
    assert not is_two_four(torch.ones(4, 6))
    assert weight_bytes(model) == 4 * sum(p.numel() for p in model.parameters())
    assert weight_bytes(pruned) == weight_bytes(model)  # zeros in dense storage still take their bytes


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU answer")
def test_semi_structured_needs_cuda(model):
    assert semi_structured_speed(model, two_four(model)) is None
    with pytest.raises(ConfigError, match="need CUDA"):
        semi_structured_copy(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="2:4 semi-structured kernels exist only on CUDA")
def test_semi_structured_on_cuda(model):
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("semi-structured sparse kernels need compute capability 8.0 or newer")
    result = semi_structured_speed(model, two_four(model), seq_len=64, warmup=1, repeats=3)
    assert result is not None and "2:4-semi-structured" in result.pruned.latency.model
    assert result.dense.latency.dtype == "float16" and result.pruned.latency.runtime == "torch-cuda"
