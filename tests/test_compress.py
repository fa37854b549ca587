"""Deep Compression's stage, checked against hand computations (Han et al. 2016)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.compress import (
    HuffmanCode, SharedLayer, decode, encode, encode_layer, linear_kmeans, quantize_layer, relative_index, shared_weights,
)
from prunebench.spec import CompressSpec, ExperimentSpec, PruneSpec, RunSettings, TrainSpec, build_specs
from prunebench.errors import ConfigError
from prunebench.experiment import run_experiment
from prunebench.experiment.compression import encode_all, share, storage_of
from prunebench.pruning.mask import Mask
from prunebench.record import load_result
from prunebench.store.artifacts import load_tensors


def test_linear_kmeans_matches_the_hand_computation() -> None:
    # init linspace(0, 12, 2) = [0, 12]; boundary 6 (a tie goes to the lower centroid): {0,1,2,6} {7,12}
    # -> means 2.25, 9.5; boundary 5.875 moves 6 up: {0,1,2} {6,7,12} -> 1, 25/3; stable.
    centroids, index = linear_kmeans(torch.tensor([0.0, 1, 2, 6, 7, 12]), 2)
    assert torch.allclose(centroids, torch.tensor([1.0, 25 / 3]))
    assert index.tolist() == [0, 0, 0, 1, 1, 1]
    # three clusters from [0, 5, 10]: {0,2} {3,4} {9,10} -> [1, 3.5, 9.5], already stable
    centroids, index = linear_kmeans(torch.tensor([0.0, 2, 3, 4, 9, 10]), 3)
    assert torch.allclose(centroids, torch.tensor([1.0, 3.5, 9.5]))
    assert index.tolist() == [0, 0, 1, 1, 2, 2]


def test_linear_init_keeps_a_rare_large_weight_its_own_centroid() -> None:
    values = torch.tensor([0.0, 0.01, 0.02, 0.03, 1.0])  # the large one stays alone (section 3.2)
    centroids, index = linear_kmeans(values, 2)
    assert centroids[1].item() == pytest.approx(1.0) and index.tolist() == [0, 0, 0, 0, 1]


def test_quantize_layer_clusters_only_the_kept_weights() -> None:
    weight = torch.tensor([[0.5, 9.0, -0.5], [9.0, 0.5, 0.25]])
    keep = torch.tensor([[True, False, True], [False, True, True]])
    layer = quantize_layer(weight, keep, "linear", 1)  # the pruned 9.0s are not in the range
    assert torch.allclose(layer.codebook, torch.tensor([-0.5, 0.4166667]))
    assert torch.equal(layer.weight() == 0, ~keep)
    few = quantize_layer(weight, keep, "linear", 4)  # 16 clusters but 4 survivors: 4 centroids
    assert few.codebook.numel() == 4 and torch.equal(few.weight()[keep], weight[keep])


def test_centroid_gradient_is_the_sum_of_its_members_gradients() -> None:
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    keep = torch.tensor([[True, True, False], [True, False, True]])
    codebook = torch.tensor([-1.0, 2.0])
    index = torch.tensor([[0, 1, 0], [1, 0, 0]])
    layer = SharedLayer("linear", 1, codebook, index, keep)
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    r = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    with shared_weights(model, {"0.weight": layer}) as attached:
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable == [attached["0.weight"].codebook]  # only the codebook trains
        (model(x) * r).sum().backward()
        dw = r.T @ x  # d/dW of sum((x W^T) * r), per weight
        expected = torch.stack([dw[keep & (index == k)].sum() for k in range(2)])
        assert torch.allclose(attached["0.weight"].codebook.grad, expected)
        torch.optim.SGD(trainable, lr=1.0).step()  # each centroid moves by minus that sum
        assert torch.allclose(attached["0.weight"].codebook.detach(), codebook - expected)
        assert torch.equal(model[0].weight[~keep], torch.zeros(2))
    assert list(model.state_dict()) == ["0.weight"]  # a plain layer again
    assert torch.equal(model[0].weight[~keep], torch.zeros(2))
    assert torch.allclose(model[0].weight[keep], (codebook - expected)[index[keep]])


def test_huffman_code_matches_the_hand_computation() -> None:
    symbols = [0] * 5 + [1] * 2 + [2, 3]
    code = HuffmanCode.fit(symbols, 4)
    assert code.lengths == (1, 2, 3, 3)
    assert code.codes == {0: (0b0, 1), 1: (0b10, 2), 2: (0b110, 3), 3: (0b111, 3)}
    assert encode([0, 1, 2, 3], code) == bytes([0b01011011, 0b10000000])  # 0 10 110 111, zero-padded
    assert decode(encode(symbols, code), len(symbols), code) == symbols


def test_huffman_round_trip_is_exact() -> None:
    rng = random.Random(0)
    for alphabet in (2, 3, 17, 256):
        symbols = [min(int(rng.expovariate(0.3)), alphabet - 1) for _ in range(1000)]
        code = HuffmanCode.fit(symbols, alphabet)
        assert decode(encode(symbols, code), len(symbols), code) == symbols
        assert len(encode(symbols, code)) == -(-code.encoded_bits(symbols) // 8)


def test_huffman_single_symbol_gets_one_bit() -> None:
    code = HuffmanCode.fit([7] * 5, 8)
    assert code.lengths == (0,) * 7 + (1,)
    assert encode([7] * 5, code) == b"\x00"
    assert decode(b"\x00", 5, code) == [7] * 5
    assert decode(b"", 0, code) == []


def test_relative_index_inserts_filler_zeros() -> None:
    keep = torch.zeros(20, dtype=torch.bool)
    keep[[1, 4, 15]] = True
    positions, gaps = relative_index(keep, 2)  # at most 3 zeros between stored entries
    assert positions == [1, 4, 8, 12, 15]  # 8 and 12: filler zeros
    assert gaps == [1, 2, 3, 3, 2]


@pytest.mark.parametrize("huffman", [True, False])
def test_encoded_layer_decodes_exactly(huffman: bool) -> None:
    torch.manual_seed(0)
    weight = torch.randn(30, 40)
    keep = torch.rand(30, 40) < 0.1  # long gaps: many fillers at 3 index bits
    layer = quantize_layer(weight, keep, "linear", 3)
    stored = encode_layer(layer, 3, huffman)
    assert stored.fillers > 0
    assert torch.equal(stored.weight(), layer.weight())


def tiny_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, 0.0, 0.0, -0.5], [0.0, 0.0, 0.0, 0.5]]))
    return model


@pytest.mark.parametrize(("huffman", "layer_bytes"), [
    # count 4 + codebook 2 x 4 + indices 3 x 1 bit -> 1 + gaps (0, 2, 3) x 2 bits -> 1; no tables
    (False, 4 + 8 + 1 + 1),
    # the same + tables: 2 index lengths, 4 gap lengths; codes of 1+1+1 and 2+2+1 bits -> 1 byte each
    (True, 4 + 8 + 1 + 1 + 2 + 4),
])
def test_storage_bytes_of_a_tiny_model_equal_the_hand_count(huffman: bool, layer_bytes: int) -> None:
    model = tiny_model()
    compress = CompressSpec(bits={"linear": 1}, index_bits={"linear": 2}, huffman=huffman, finetune_epochs=0)
    mask = Mask.from_nonzero({"0.weight": model[0].weight})
    layers = share(model, mask, compress)
    assert layers["0.weight"].index[mask["0.weight"]].tolist() == [1, 0, 1]  # centroids -0.5, 0.5
    storage = storage_of(model, layers, encode_all(layers, compress), compress, [])
    assert storage.layers["0.weight"].total_bytes == layer_bytes
    assert storage.unshared_bytes == 2 * 4  # the fp32 bias
    assert storage.storage_bytes == layer_bytes + 8
    assert storage.dense_bytes == 10 * 4
    # without the bias, the Huffman tables and the entry count: codebook 8 + indices 1 + gaps 1
    assert storage.shared_weight_bytes == 8 + 1 + 1
    assert storage.ratio_without_biases_and_tables == 40 / 10 > storage.dense_bytes / storage.storage_bytes


TRAIN = TrainSpec(epochs=1, lr=0.05, batch_size=64)
FINETUNE = TrainSpec(epochs=1, lr=0.01, batch_size=64, weight_decay=0.01)  # decay would move a zero


def test_pipeline_stage_holds_the_mask_and_records_the_storage(tmp_path: Path) -> None:
    compress = {"bits": {"linear": 3}, "index_bits": {"linear": 4}, "finetune_epochs": 1}
    spec = ExperimentSpec(dataset="synthetic", model="mlp", train=TRAIN, finetune=FINETUNE,
                          prune=PruneSpec(compression=6), compress=compress)
    plain = spec.replace(compress=None)
    assert spec.run_id != plain.run_id and plain.resolved()["compress"] is None
    result = run_experiment(spec, RunSettings(), tmp_path)
    mask = load_tensors(tmp_path / spec.run_id / "mask.pt")
    quantized = load_tensors(tmp_path / spec.run_id / "quantized.pt")
    pruned = load_tensors(tmp_path / spec.run_id / "model.pt")
    assert result.storage is not None and set(result.storage.layers) == {k for k in quantized if k.endswith("weight")}
    for name, layer in result.storage.layers.items():
        keep = mask[name] if name in mask else torch.ones_like(quantized[name], dtype=torch.bool)
        assert torch.equal(quantized[name][~keep], torch.zeros(int((~keep).sum())))  # pruned stay zero
        assert torch.unique(quantized[name][keep]).numel() <= 2**3 == 2**layer.bits
        assert not torch.equal(quantized[name], pruned[name])  # shared, not the fine-tuned weights
    storage = result.storage
    assert storage.storage_bytes == sum(layer.total_bytes for layer in storage.layers.values()) + storage.unshared_bytes
    assert result.sizes.storage_bytes == storage.storage_bytes
    assert result.sizes.storage_compression_ratio == pytest.approx(4 * result.sizes.params_total / storage.storage_bytes)
    assert result.sizes.storage_compression_ratio > result.sizes.compression_ratio  # fewer bits per weight as well
    assert result.accuracy.quantized_top1 is not None and len(storage.finetune_log) == 1
    assert load_result(result.model_dump_json()) == result


def test_results_without_the_stage_still_load(tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="synthetic", model="mlp", train=TRAIN, finetune=FINETUNE, prune=PruneSpec(compression=6))
    data = run_experiment(spec, RunSettings(), tmp_path).model_dump(mode="json")
    for section, key in (("sizes", "storage_bytes"), ("sizes", "storage_compression_ratio"), ("accuracy", "quantized_top1")):
        assert data[section].pop(key) is None
    data.pop("storage")
    loaded = load_result(data)
    assert loaded.storage is None and loaded.sizes.storage_bytes is None and loaded.accuracy.quantized_top1 is None


@pytest.mark.parametrize(("compress", "message"), [
    ({"bits": {"conv": 0}}, "compress.bits.conv: 0 is not a bit count from 1 to 16"),
    ({"bits": {"linear": 17}}, "compress.bits.linear: 17 is not a bit count from 1 to 16"),
    ({"bits": {"fc": 5}}, "compress.bits: unknown layer kind 'fc' (allowed: 'conv' or 'linear')"),
    ({"index_bits": {"conv": 8, "fc": 5}}, "compress.index_bits: unknown layer kind 'fc' (allowed: 'conv' or 'linear')"),
    ({"bits": {"linear": 6}, "index_bits": {"conv": 8}}, "compress.index_bits: no width for 'linear', which compress.bits quantizes"),
    ({"finetune_epochs": -1}, "compress.finetune_epochs: Input should be greater than or equal to 0"),
])
def test_bad_compress_input_is_one_line(compress: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_specs({"dataset": "synthetic", "model": "mlp", "compress": compress})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_report_shows_storage_compression_beside_parameter_compression(tmp_path: Path) -> None:
    from prunebench.executors import make_executor
    from prunebench.plan.runner import run_plan
    from prunebench.plan.sweep import plan_from_mapping
    from prunebench.report.aggregate import build_groups
    from prunebench.report.results import results_rows
    from prunebench.report.tables import levels_table
    from prunebench.store import ResultsDB

    config = {
        "dataset": "synthetic", "model": "mlp", "threads": 1, "baselines": False,
        "train": {"epochs": 1, "lr": 0.05, "batch_size": 64}, "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
        "sweep": {"compress": [None, {"bits": {"linear": 4}, "finetune_epochs": 0}]},
    }
    assert run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)["completed"] == 3
    rows = results_rows(tmp_path)
    compressed = [r for r in rows if r["storage_compression_ratio"] is not None]
    assert len(compressed) == 1 and compressed[0]["quantized_top1"] is not None
    table = levels_table(build_groups(ResultsDB(tmp_path).rows())[0])
    column = table.header.index("storage compression")
    assert table.header[column - 1] == "compression" and table.header[column + 1] == "quantized top-1 (%)"
    values = sorted(row[column] for row in table.rows if row[0] != "dense")
    assert values == sorted(["-", f"{compressed[0]['storage_compression_ratio']:.2f}"])
