"""Measured speed of language-model runs: prefill and decode tokens/s, dense against pruned in the
same rounds, eager, compiled and sparse CSR, on tiny random Llamas built here."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from lm_tiny import tiny_llama  # noqa: E402
from prunebench.cli import main  # noqa: E402
from prunebench.errors import ConfigError  # noqa: E402
from prunebench.metrics.lm_speed import (  # noqa: E402
    SpeedOptions, greedy_decode, measure_speed, parse_shape, sparse_csr_blocks,
)
from prunebench.pruning.depth import remove_blocks  # noqa: E402
from test_lm_pipeline import config, results_of, run, setup  # noqa: E402,F401

SMALL = SpeedOptions(prefill=((1, 24), (2, 8)), decode_tokens=6, runtimes=("torch", "torch-sparse-csr"), repeats=2)


def half_zero(model: nn.Module) -> nn.Module:
    """A copy with the smaller half of every decoder-block Linear weight set to zero."""
    pruned = copy.deepcopy(model)
    for name, p in pruned.named_parameters():
        if ".layers." in name and p.dim() == 2:
            p.data[p.abs() < p.abs().median()] = 0
    return pruned


def test_greedy_decode_gives_the_tokens_of_generate() -> None:
    model = tiny_llama(layers=2)
    prompt = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(3))
    timed: list[float] = []
    ours = greedy_decode(model, prompt, 64, timed=timed)
    model.generation_config.eos_token_id = None  # all 64 tokens, even past the random model's "end"
    theirs = model.generate(prompt, max_new_tokens=64, do_sample=False, pad_token_id=0)[:, prompt.shape[1]:]
    assert ours.shape == (1, 64) and torch.equal(ours, theirs)
    assert len(timed) == 1 and timed[0] > 0


def test_every_row_is_positive_and_dense_and_pruned_alternate() -> None:
    dense = tiny_llama(layers=2)
    pruned = half_zero(dense)
    calls: list[str] = []
    for label, model in (("dense", dense), ("pruned", pruned)):
        model.model.embed_tokens.register_forward_hook(lambda *args, label=label: calls.append(label))
    options = SpeedOptions(prefill=SMALL.prefill, decode_tokens=6, runtimes=("torch",), warmup=1, repeats=3)
    result = measure_speed(dense, pruned, options, threads=1)
    assert [(r.runtime, r.form) for r in result.rows] == [("torch", "prefill 1x24"), ("torch", "prefill 2x8"),
                                                          ("torch", "decode 6")]
    for row in result.rows:
        assert row.skipped is None and row.rounds == 3
        for value in (row.dense_ms, row.pruned_ms, row.dense_tokens_per_s, row.pruned_tokens_per_s, row.measured_speedup):
            assert value is not None and value > 0
    prefill = result.rows[0]
    assert prefill.dense_tokens_per_s == pytest.approx(24 / (prefill.dense_ms / 1000))
    decode = result.rows[2]
    assert decode.dense_tokens_per_s == pytest.approx(5 / (decode.dense_ms / 1000))  # the 5 steps after the prompt
    # in turns: every call of one model is followed by the other's (warmup and each timed round)
    turns = [label for i, label in enumerate(calls) if i == 0 or calls[i - 1] != label]
    assert all(a != b for a, b in zip(turns, turns[1:])) and turns[0] == "dense"
    assert len(turns) == 3 * 2 * (1 + 3)  # two prefill shapes and decode, each 1 warmup + 3 rounds per model
    assert result.threads == 1 and result.device and result.dtype == "float32" and result.wall_s > 0
    assert not dense.training and torch.get_num_threads() >= 1


def test_sparse_csr_replaces_the_pruned_layers_and_computes_the_same() -> None:
    dense = tiny_llama(layers=2)
    pruned = half_zero(dense)
    sparse, names = sparse_csr_blocks(pruned)
    assert len(names) == 2 * 7 and all(".layers." in n for n in names)  # q, k, v, o, gate, up, down per block
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(sparse(input_ids=ids).logits, pruned(input_ids=ids).logits, atol=1e-5)
    result = measure_speed(dense, pruned, SMALL, threads=1)
    csr = [r for r in result.rows if r.runtime == "torch-sparse-csr"]
    assert len(csr) == 3 and all(r.skipped is None and r.pruned_tokens_per_s > 0 for r in csr)  # type: ignore[operator]
    assert csr[0].note is not None and csr[0].note.startswith("14 of 15 Linear layers")
    # a depth-pruned model has no zeros: nothing to run sparse, said instead of timed
    shallow = remove_blocks(tiny_llama(layers=3), [1])
    rows = measure_speed(tiny_llama(layers=3), shallow, SMALL, threads=1).rows
    assert rows[-1].runtime == "torch-sparse-csr" and "nothing to run sparse" in (rows[-1].skipped or "")
    assert rows[0].measured_speedup is not None and rows[0].measured_speedup > 0


def test_bad_options_name_their_field() -> None:
    assert parse_shape("8x128") == (8, 128)
    for text in ("8by128", "0x4", "x3"):
        with pytest.raises(ConfigError, match="lm_prefill"):
            parse_shape(text)
    with pytest.raises(ConfigError, match="lm_runtimes"):
        SpeedOptions(runtimes=("onnxruntime",))
    with pytest.raises(ConfigError, match="lm_decode_tokens"):
        SpeedOptions(decode_tokens=1)


@pytest.mark.slow
def test_torch_compile_is_timed_or_says_why_not() -> None:
    dense = tiny_llama(layers=2)
    options = SpeedOptions(prefill=((1, 16),), decode_tokens=4, runtimes=("torch-compile",), repeats=2)
    result = measure_speed(dense, half_zero(dense), options, threads=1)
    rows = result.rows
    assert rows and all(r.runtime == "torch-compile" for r in rows)
    if not rows[0].skipped:  # compiled here: every row timed, the compile's time recorded
        assert all(r.measured_speedup and r.measured_speedup > 0 for r in rows)
        assert result.compile_s is not None and result.compile_s > 0
    else:
        assert len(rows) == 1 and "torch.compile" in (rows[0].skipped or "")


def test_a_run_records_prefill_and_decode_speed(setup: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    data = config(setup, latency=True, lm_prefill=["1x16", "2x8"], lm_decode_tokens=4, lm_speed_repeats=2)
    data["baselines"] = False
    assert run(tmp_path, data) == 0
    (result,) = results_of(tmp_path)
    latency = result.latency
    assert latency is not None and latency.form == "prefill 1x16" and latency.seq_len == 16
    forms = {(f.runtime, f.form): f for f in latency.forms}
    assert set(forms) == {(r, f) for r in ("torch-eager", "torch-sparse-csr") for f in ("prefill 1x16", "prefill 2x8", "decode 4")}
    for form in forms.values():
        assert form.dense_tokens_per_s > 0 and form.pruned_tokens_per_s > 0 and form.measured_speedup > 0  # type: ignore[operator]
    assert latency.speed_wall_s is not None and latency.speed_wall_s > 0 and latency.threads == 1
    stored = json.loads(next((tmp_path / "results").glob("*/result.json")).read_text())
    assert stored["latency"]["forms"][0]["dense_tokens_per_s"] > 0
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    table = next((tmp_path / "report").glob("*-latency.md")).read_text()
    assert "decode 4" in table and "torch-sparse-csr" in table


def test_bad_speed_settings_are_one_line(setup: dict[str, Path], tmp_path: Path,  # noqa: F811
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in (("lm_prefill", ["8by128"]), ("lm_runtimes", ["onnxruntime"])):
        assert run(tmp_path, config(setup, latency=True, **{key: value})) == 2
        err = capsys.readouterr().err
        assert key in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").glob("*/result.json"))
