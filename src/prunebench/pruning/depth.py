"""Depth pruning of causal language models: whole decoder blocks chosen and physically removed.

A criterion (:class:`DepthCriterion`, registered in :data:`DEPTH_CRITERIA`) picks the blocks:

- ``block_influence`` (ShortGPT, Men et al. 2024, arXiv:2403.03853): a block's influence is
  ``1 - cos(x_l, x_{l+1})``, its input against its output hidden state, averaged over every
  calibration token; the blocks of lowest influence go, wherever they are (not necessarily
  consecutive). Every block is eligible. The paper calibrates on PG19 text; here the run's
  calibration split is used.
- ``angular_distance`` (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper
  Layers", arXiv:2403.17887): for removing ``n`` consecutive blocks, the distance between the
  input of block ``l`` and the input of block ``l + n`` is ``arccos(cos(x_l, x_{l+n})) / pi``
  at the final token of each sequence (the paper's choice), averaged over sequences; the run
  ``l .. l+n-1`` of smallest distance goes. Every start ``l`` in ``0 .. L-n`` is eligible
  (``x_L`` is the last block's output, before the final norm).
- ``random``: ``n`` blocks drawn with the run's seed, the control both must beat.

The target is a count of blocks or a fraction of the decoder blocks' parameters
(:func:`blocks_for_fraction`). :func:`remove_blocks` shortens the model's ``ModuleList``,
renumbers each kept attention's ``layer_idx`` (the key-value cache is indexed by it) and sets
``config.num_hidden_layers``, so the smaller model runs ``generate`` and round-trips through
``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.registry import Registry


@dataclass
class BlockStatistics:
    """What one pass over the calibration sequences measured at the block boundaries.

    ``cos_sum[l]`` sums cos(input, output) of block ``l`` over all ``tokens``; ``last[l]`` holds
    the final token's hidden state at boundary ``l`` (the input of block ``l``; ``last[L]`` the
    last block's output), one row per sequence."""

    cos_sum: torch.Tensor  # (L,) float64
    tokens: int
    last: list[torch.Tensor] = field(default_factory=list)  # L + 1 tensors of (sequences, hidden)

    @property
    def num_blocks(self) -> int:
        return int(self.cos_sum.numel())


def block_influence(stats: BlockStatistics) -> torch.Tensor:
    """ShortGPT's BI per block: 1 - the mean over tokens of cos(block input, block output)."""
    return 1.0 - stats.cos_sum / stats.tokens


def angular_distances(stats: BlockStatistics, n: int) -> torch.Tensor:
    """Gromov et al.'s distance per start ``l`` (0 .. L-n): arccos(cos(x_l, x_{l+n})) / pi at the
    final token, averaged over sequences."""
    distances = []
    for start in range(stats.num_blocks - n + 1):
        cos = nn.functional.cosine_similarity(stats.last[start].double(), stats.last[start + n].double(), dim=-1)
        distances.append((torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi).mean())
    return torch.stack(distances)


def _lowest_influence(stats: BlockStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    assert stats is not None
    return sorted(torch.argsort(block_influence(stats), stable=True)[:n].tolist())


def _closest_run(stats: BlockStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    assert stats is not None
    start = int(torch.argmin(angular_distances(stats, n)))
    return list(range(start, start + n))


def _random_blocks(stats: BlockStatistics | None, n: int, total: int, generator: torch.Generator) -> list[int]:
    return sorted(torch.randperm(total, generator=generator)[:n].tolist())


@dataclass(frozen=True)
class DepthCriterion:
    """How a depth method picks ``n`` blocks to remove from its calibration statistics
    (``choose(stats, n, total, generator) -> sorted block indices`` of ``total`` blocks);
    ``needs_data`` False: no calibration pass, ``stats`` is None."""

    name: str
    description: str
    choose: Callable[[BlockStatistics | None, int, int, torch.Generator], list[int]]
    needs_data: bool = True


DEPTH_CRITERIA: Registry[DepthCriterion] = Registry("depth criterion")
DEPTH_CRITERIA.add("block_influence", DepthCriterion(
    "block_influence", "ShortGPT (Men et al. 2024): remove the blocks of lowest 1 - cos(input, output), "
    "averaged over calibration tokens", _lowest_influence))
DEPTH_CRITERIA.add("angular_distance", DepthCriterion(
    "angular_distance", "Gromov et al. 2024: remove the n consecutive blocks whose input and output are "
    "closest in angle at the final token", _closest_run))
DEPTH_CRITERIA.add("random", DepthCriterion(
    "random", "n blocks drawn at random with the run's seed (the control)", _random_blocks, needs_data=False))


# ---------------------------------------------------------------------------------------------
# The blocks, their statistics and the target


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    from prunebench.pruning.layerwise import decoder_blocks as blocks

    return blocks(model)


def block_parameters(model: nn.Module) -> list[int]:
    """Parameters of each decoder block."""
    return [sum(p.numel() for p in block.parameters()) for block in decoder_blocks(model)]


def blocks_for_fraction(model: nn.Module, fraction: float) -> int:
    """How many blocks remove the share of the decoder blocks' parameters closest to
    ``fraction`` (blocks of equal size: ``round(fraction * L)``); at least one block stays."""
    if not 0 < fraction < 1:
        raise ConfigError(f"prune.sparsity: depth pruning removes a fraction of the decoder parameters in (0, 1), got {fraction}")
    sizes = block_parameters(model)
    mean = sum(sizes) / len(sizes)
    return check_count(round(fraction * sum(sizes) / mean), len(sizes))


def check_count(n: int, total: int) -> int:
    if not 1 <= n < total:
        raise ConfigError(f"depth pruning: the block count must be between 1 and {total - 1} of the "
                          f"model's {total} decoder blocks, got {n}")
    return n


def _hidden(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


@contextmanager
def _boundary_hooks(blocks: nn.ModuleList, stats: BlockStatistics) -> Iterator[None]:
    """Hooks that add each block's cos(input, output) per token and keep each boundary's last token."""
    inputs: dict[int, torch.Tensor] = {}
    last: list[list[torch.Tensor]] = [[] for _ in range(len(blocks) + 1)]

    def before(index: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            inputs[index] = hidden.detach()
            last[index].append(hidden.detach()[:, -1].float().cpu())
        return hook

    def after(index: int) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            out = _hidden(output).detach()
            x = inputs.pop(index)
            cos = nn.functional.cosine_similarity(x.double(), out.double(), dim=-1)
            stats.cos_sum[index] += cos.sum().cpu()
            if index == len(blocks) - 1:
                last[-1].append(out[:, -1].float().cpu())
        return hook

    handles = [h for i, block in enumerate(blocks) for h in (
        block.register_forward_pre_hook(before(i), with_kwargs=True),
        block.register_forward_hook(after(i), with_kwargs=True))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        stats.last = [torch.cat(rows) for rows in last] if last[0] else []


def block_statistics(model: nn.Module, calibration: torch.Tensor, batch_size: int = 8) -> BlockStatistics:
    """One eval-mode pass of the dense model over ``calibration`` ((sequences, seq_len) token ids)."""
    if calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0:
        raise ValueError("calibration must be a non-empty (n_samples, seq_len) tensor of token ids")
    blocks = decoder_blocks(model)
    stats = BlockStatistics(cos_sum=torch.zeros(len(blocks), dtype=torch.float64), tokens=0)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _boundary_hooks(blocks, stats):
            for batch in calibration.split(batch_size):
                model(input_ids=batch.to(device), use_cache=False)
                stats.tokens += batch.numel()
    finally:
        model.train(was_training)
    return stats


def choose_blocks(model: nn.Module, criterion: str, n: int, calibration: torch.Tensor | None = None, *,
                  seed: int = 0, batch_size: int = 8) -> list[int]:
    """The sorted indices of the ``n`` blocks ``criterion`` removes."""
    method = DEPTH_CRITERIA.get(criterion)
    total = len(decoder_blocks(model))
    check_count(n, total)
    generator = torch.Generator().manual_seed(seed)
    if not method.needs_data:
        return method.choose(None, n, total, generator)
    if calibration is None:
        raise ValueError(f"depth criterion {criterion!r} needs calibration sequences")
    return method.choose(block_statistics(model, calibration, batch_size), n, total, generator)


# ---------------------------------------------------------------------------------------------
# Physical removal


def remove_blocks(model: nn.Module, remove: Sequence[int]) -> nn.Module:
    """Delete decoder blocks ``remove`` from ``model`` in place and return it.

    The kept blocks are renumbered 0..K-1: each module's ``layer_idx`` (Llama-style attention
    indexes the key-value cache by it), ``config.num_hidden_layers`` and any per-layer config
    list (``layer_types``) follow, so the model generates with a cache and saves as a K-block
    model that ``from_pretrained`` rebuilds."""
    blocks = decoder_blocks(model)
    total = len(blocks)
    drop = set(remove)
    if not drop or any(not 0 <= i < total for i in drop) or len(drop) >= total:
        raise ConfigError(f"depth pruning: cannot remove blocks {sorted(drop)} of {total}")
    kept = [i for i in range(total) if i not in drop]
    new_blocks = nn.ModuleList([blocks[i] for i in kept])
    path = next(name for name, module in model.named_modules() if module is blocks)
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new_blocks)
    for new_index, block in enumerate(new_blocks):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                setattr(module, "layer_idx", new_index)  # noqa: B010 (nn.Module types unknown attributes as Tensor | Module)
    config = getattr(model, "config", None)
    if config is not None:
        for key in ("layer_types",):  # per-block lists some configs keep (sliding or full attention)
            values = getattr(config, key, None)
            if isinstance(values, list) and len(values) == total:
                setattr(config, key, [values[i] for i in kept])
        config.num_hidden_layers = len(kept)
    return model


@dataclass(frozen=True)
class DepthOutcome:
    removed: list[int]  # block indices of the dense model
    blocks_before: int
    parameters_removed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"removed_blocks": self.removed, "blocks_before": self.blocks_before,
                "blocks_after": self.blocks_before - len(self.removed), "parameters_removed": self.parameters_removed,
                "seconds": self.seconds}


def prune_depth(model: nn.Module, criterion: str, *, blocks: int | None = None, fraction: float | None = None,
                calibration: torch.Tensor | None = None, seed: int = 0, batch_size: int = 8) -> DepthOutcome:
    """Remove ``blocks`` decoder blocks (or those that make up ``fraction`` of the decoder blocks'
    parameters) chosen by ``criterion``, in place."""
    started = time.perf_counter()
    if (blocks is None) == (fraction is None):
        raise ConfigError("depth pruning needs exactly one target: a count of blocks or a parameter fraction")
    sizes = block_parameters(model)
    n = check_count(blocks, len(sizes)) if blocks is not None else blocks_for_fraction(model, fraction)  # type: ignore[arg-type]
    removed = choose_blocks(model, criterion, n, calibration, seed=seed, batch_size=batch_size)
    remove_blocks(model, removed)
    return DepthOutcome(removed, len(sizes), sum(sizes[i] for i in removed), time.perf_counter() - started)
