"""The compress stage (Deep Compression, Han et al. 2016), after fine-tuning.

On a copy of the pruned, fine-tuned model: share the weights of every conv/linear layer whose
kind has bits (k-means over its kept weights), fine-tune the centroids with the mask held,
encode each layer (relative sparse index, Huffman coding), and decode the stored form back into
the model that is evaluated, so ``quantized_top1`` is the accuracy of exactly what is stored.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from prunebench.compress import FP32_BYTES, EncodedLayer, encode_layer, quantizable_layers, quantize_layer, shared_weights
from prunebench.compress.quantize import SharedLayer, owner
from prunebench.spec import CompressSpec, ExperimentSpec
from prunebench.data import DataSplits
from prunebench.metrics import evaluate
from prunebench.pruning.mask import Mask
from prunebench.record import Storage, StorageLayer
from prunebench.train import train

COMPRESS_SEED_OFFSET = 3  # centroid fine-tuning's data order differs from the other phases'


@dataclass(frozen=True)
class Compressed:
    model: nn.Module  # decoded from the stored form
    storage: Storage
    top1: float
    top5: float
    seconds: float


def share(model: nn.Module, mask: Mask, compress: CompressSpec) -> dict[str, SharedLayer]:
    """k-means per layer over its kept entries (all entries of a layer the mask does not cover)."""
    shared = {}
    for name, (module, kind) in quantizable_layers(model, compress.bits).items():
        weight = module.weight.detach()
        keep = mask[name].to(weight.device) if name in mask else torch.ones_like(weight, dtype=torch.bool)
        shared[name] = quantize_layer(weight, keep, kind, compress.bits[kind])
    return shared


def encode_all(layers: dict[str, SharedLayer], compress: CompressSpec) -> dict[str, EncodedLayer]:
    return {name: encode_layer(layer, compress.index_bits[layer.kind], compress.huffman) for name, layer in layers.items()}


def storage_of(
    model: nn.Module, layers: dict[str, SharedLayer], encoded: dict[str, EncodedLayer], compress: CompressSpec,
    log: list[dict[str, object]],
) -> Storage:
    """Every byte of the stored form: shared layers as encoded, every other parameter as fp32."""
    total = sum(p.numel() for p in model.parameters())
    unshared = total - sum(layers[name].keep.numel() for name in encoded)
    records = {
        name: StorageLayer(
            kind=layers[name].kind, bits=layers[name].bits, index_bits=compress.index_bits[layers[name].kind],
            clusters=e.codebook.numel(), entries=e.gaps.count, fillers=e.fillers,
            bytes=e.bytes_by_part, total_bytes=e.total_bytes,
        )
        for name, e in encoded.items()
    }
    stored = sum(r.total_bytes for r in records.values()) + FP32_BYTES * unshared
    return Storage(
        dense_bytes=FP32_BYTES * total, storage_bytes=stored, unshared_bytes=FP32_BYTES * unshared,
        huffman=compress.huffman, layers=records, finetune_log=log,
    )


def compress_model(spec: ExperimentSpec, data: DataSplits, model: nn.Module, mask: Mask) -> Compressed:
    """Run the stage of ``spec.compress`` on a copy of ``model``; ``model`` itself is left as it is."""
    compress = spec.compress
    if compress is None:
        raise ValueError("the spec has no compress section")
    started = time.perf_counter()
    quantized = copy.deepcopy(model)
    layers = share(quantized, mask, compress)
    log: list[dict[str, object]] = []
    with shared_weights(quantized, layers) as attached:
        if compress.finetune_epochs:
            recipe = spec.finetune.model_copy(
                update={"epochs": compress.finetune_epochs, **({"lr": compress.lr} if compress.lr else {})}
            )
            history = train(quantized, data, recipe, seed=spec.seed + COMPRESS_SEED_OFFSET, stage="centroid fine-tuning")
            log = [asdict(e) for e in history.epochs]
        layers = {
            name: SharedLayer(layer.kind, layer.bits, attached[name].codebook.detach().cpu().clone(), layer.index, layer.keep)
            for name, layer in layers.items()
        }
    encoded = encode_all(layers, compress)
    with torch.no_grad():
        for name, stored in encoded.items():
            weight = stored.weight()
            if not torch.equal(weight, layers[name].weight()):
                raise RuntimeError(f"{name}: the stored form does not decode to the quantized weight")
            module = owner(quantized, name)
            module.weight.copy_(weight.to(module.weight.device))
    test = evaluate(quantized, data.test_x, data.test_y)
    return Compressed(quantized, storage_of(quantized, layers, encoded, compress, log), test.top1, test.top5,
                      time.perf_counter() - started)
