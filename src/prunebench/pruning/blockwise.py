"""One-shot pruning of a causal LM read from its weight files one decoder block at a time.

:func:`prune_causal_lm` holds the whole model in memory. :func:`prune_checkpoint` builds the
model's skeleton with its parameters on the ``meta`` device (no memory), loads only what comes
before the first block (the embeddings), captures the first block's calibration inputs, and then
for each block in turn: reads its tensors from the files (:mod:`prunebench.models.weight_files`:
safetensors shards or GGUF tensors, one at a time), runs the calibration activations through it,
prunes its Linears with the very scores, updates and selection of the whole-model driver (its
functions, imported from :mod:`prunebench.pruning.layerwise`), runs the pruned block to make the
next block's inputs, writes the block's tensors and mask out and gives its memory back. Peak
memory is about the embeddings, one block in float32 and the activations, whatever the depth.

The masks are the whole-model driver's, mask for mask (tests/test_lm_blockwise.py). What needs
every block at once is not offered: ``scope: global`` (one ranking over all Linears) is refused,
every block gets the same sparsity (no ``owl`` allocation, which ranks blocks by their dense
scores), and there is no earlier mask to refine.

The output folder is a Hugging Face checkpoint: ``config.json``, one safetensors shard for the
tensors outside the blocks and one per block, ``model.safetensors.index.json``; each tensor in
the dtype the files gave it (a GGUF's dequantized float32), so SparseGPT's updated weights are
rounded to a bf16 checkpoint's bf16. ``mask/block-NNNNN.safetensors`` holds each block's keep
masks (True = kept; :func:`read_mask`), outside the index, so loaders never see them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.models.weight_files import model_config, open_weights
from prunebench.pruning.layerwise import (
    _block_linears,
    _first_block_inputs,
    _inference,
    _lm_pruner,
    _observe,
    _parse_target,
    _prune_linear,
    _run_block,
    decoder_blocks,
    keep_from_scores,
)
from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import LANGUAGE_MODEL, LayerStatistics, LayerTarget

log = logging.getLogger("prunebench")

INDEX_FILE = "model.safetensors.index.json"
MASK_FOLDER = "mask"


@dataclasses.dataclass(frozen=True)
class BlockwiseOutcome:
    folder: Path  # the pruned checkpoint
    layer_sparsity: dict[str, float]  # fraction pruned of each prunable weight
    seconds: float


def empty_model(config: Any) -> nn.Module:
    """The causal LM of ``config`` with every parameter on the meta device, in eval mode.
    Buffers are made for real: the rotary frequencies are computed at construction and are in
    no weight file."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()


def prune_checkpoint(
    source: str | Path,
    out: str | Path,
    calibration: torch.Tensor,
    strategy: str,
    *,
    sparsity: float | None = None,
    structure: str = "unstructured",
    scope: str | None = None,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 8,
) -> BlockwiseOutcome:
    """Prune the checkpoint at ``source`` (a Hugging Face folder with safetensors weights, or a
    ``.gguf`` file) block by block and write the pruned checkpoint to the new folder ``out``.

    The arguments are :func:`prunebench.pruning.layerwise.prune_causal_lm`'s, with the same
    meaning and defaults; ``scope: global`` is refused. Nothing is written on a ConfigError; a
    failure half way removes ``out`` again. torch's threads and the global RNG are left as they
    were (``seed`` drives a generator of its own)."""
    started = time.perf_counter()
    source, out = Path(source).expanduser(), Path(out).expanduser()
    registered, pruner = _lm_pruner(strategy)
    parsed_options = registered.parse_options(options)
    n, m = _parse_target(structure, sparsity)
    scope = scope or pruner.default_scope
    registered.check_scope(scope, LANGUAGE_MODEL)
    if scope == "global":
        raise ConfigError("prune.scope 'global' ranks all blocks' weights at once; block by block, use 'row' or 'layer'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out: {out} exists and is not an empty folder")
    if not source.exists():
        raise ConfigError(f"model: no such file or directory ({source})")
    config = model_config(source)
    model = empty_model(copy.deepcopy(config))  # building in float32 would mark the saved config float32
    weights = open_weights(source, model)
    blocks = decoder_blocks(model)
    blocks_linears = _block_linears(model)
    prefix = next(name for name, module in model.named_modules() if module is blocks)
    for linears in blocks_linears:
        for name, linear in linears.items():
            if m is not None and linear.in_features % m:
                raise ConfigError(f"prune.structure {structure!r}: M={m} does not divide the input dimension {linear.in_features} of {name}")
    if pruner.statistics != "none" and (calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0):
        raise ValueError("calibration must be a non-empty (n_samples, seq_len) tensor of token ids")
    available = set(weights.names())
    outside = [name for name in available if not name.startswith(f"{prefix}.")]
    target = LayerTarget(sparsity=sparsity, n=n, m=m, scope=scope)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _inference(model):
            _load_front(model, weights, available)
            inputs = _first_block_inputs(model, calibration, batch_size) if pruner.statistics != "none" else None
            shards = len(blocks) + 1
            index: dict[str, str] = {}
            total = _write_shard(out, 1, shards, weights.read(sorted(outside)), index)
            layer_sparsity: dict[str, float] = {}
            for number, (block, linears) in enumerate(zip(blocks, blocks_linears)):
                block_prefix = f"{prefix}.{number}."
                raw = weights.read(block_prefix + key for key in block.state_dict())
                dtypes = {name: tensor.dtype for name, tensor in raw.items()}
                block.load_state_dict({name[len(block_prefix):]: t.to(torch.float32) for name, t in raw.items()},
                                      assign=True)
                del raw
                if inputs is None:  # data-free: the scores in the whole-model driver's order
                    keep = {}
                    for name, linear in linears.items():
                        scores = pruner.score(linear.weight, LayerStatistics(tokens=0), parsed_options, generator)  # type: ignore[misc]
                        keep[name] = keep_from_scores(scores, target, name=name, seed=seed)
                        linear.weight.masked_fill_(~keep[name], 0)
                else:
                    stats = _observe(block, linears, inputs, pruner.statistics)
                    keep = {name: _prune_linear(pruner, linear, stats[name], target, parsed_options, generator,
                                                name=name, seed=seed)
                            for name, linear in linears.items()}
                    del stats
                    if number + 1 < len(blocks):
                        _run_block(block, inputs)  # the pruned block's outputs feed the next block
                state = {block_prefix + key: value.detach().to(dtypes[block_prefix + key])
                         for key, value in block.state_dict().items()}
                total += _write_shard(out, number + 2, shards, state, index)
                _save(out / MASK_FOLDER / f"block-{number:05d}.safetensors", keep)
                layer_sparsity.update({name: 1.0 - float(k.to(torch.float64).mean()) for name, k in keep.items()})
                del state, keep
                block.to_empty(device="meta")  # frees the block's tensors
                log.info("block %d of %d pruned and written (%.0f s)", number + 1, len(blocks), time.perf_counter() - started)
        (out / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index},
                                                 indent=2, sort_keys=True) + "\n")
        config.save_pretrained(out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return BlockwiseOutcome(folder=out, layer_sparsity=layer_sparsity, seconds=time.perf_counter() - started)


def _load_front(model: nn.Module, weights: Any, available: set[str]) -> None:
    """Load the tensors outside the blocks that the forward reads before the first block (the
    embeddings, in float32); the output embeddings (the LM head) are never run, so stay empty."""
    blocks = decoder_blocks(model)
    blocks_name = next(name for name, module in model.named_modules() if module is blocks)
    pretrained: Any = model  # a transformers PreTrainedModel
    head = pretrained.get_output_embeddings()
    head_name = next((name for name, module in model.named_modules() if module is head), None)
    wanted = [name for name in model.state_dict()
              if not name.startswith(f"{blocks_name}.") and name in available
              and (head_name is None or not name.startswith(f"{head_name}."))]
    tensors = {name: t.to(torch.float32) for name, t in weights.read(wanted).items()}
    model.load_state_dict(tensors, strict=False, assign=True)


def _write_shard(out: Path, number: int, shards: int, tensors: Mapping[str, torch.Tensor], index: dict[str, str]) -> int:
    """Write one shard of the checkpoint, add its names to ``index``; its size in bytes."""
    name = f"model-{number:05d}-of-{shards:05d}.safetensors"
    _save(out / name, tensors)
    index.update({key: name for key in tensors})
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _save(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(path))


def read_mask(folder: str | Path) -> Mask:
    """The keep masks a :func:`prune_checkpoint` wrote to ``folder``, over every pruned weight."""
    from safetensors.torch import load_file

    files = sorted((Path(folder) / MASK_FOLDER).glob("block-*.safetensors"))
    if not files:
        raise ConfigError(f"{folder} has no {MASK_FOLDER}/block-*.safetensors: not pruned block by block")
    return Mask({name: keep for path in files for name, keep in load_file(str(path)).items()})
