"""Depth pruning of causal language models: whole decoder blocks chosen and physically removed.

A depth strategy (:mod:`prunebench.pruning.scores.depth`: ``block_influence``, ShortGPT;
``angular_distance``, Gromov et al. 2024; ``random_block``, the control) picks the blocks from
one pass of the dense model over the calibration sequences (:func:`block_statistics`). The
target is a count of blocks or a fraction of the decoder blocks' parameters
(:func:`blocks_for_fraction`).

Two ways out. :func:`prune_depth` removes the blocks at once: :func:`remove_blocks` shortens the
model's ``ModuleList``, renumbers each kept attention's ``layer_idx`` (the key-value cache is
indexed by it) and sets ``config.num_hidden_layers``, so the smaller model runs ``generate`` and
round-trips through ``save_pretrained`` / ``from_pretrained``. :func:`mask_depth` is what a run
does (``prune.structure: depth``): it zeroes every Linear weight of the chosen blocks, a mask like
any other method's, which makes each of them pass its input on unchanged
(:mod:`prunebench.pruning.structures.lm_depth`); recovery holds that mask, and the blocks are
removed after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import STRATEGIES
from prunebench.pruning.scores.depth import (
    BoundaryStatistics, DepthMethod, angular_distances, block_influence,
)

if TYPE_CHECKING:
    from prunebench.pruning.layerwise import LMPruneOutcome

OUTPUT_PROJECTIONS = ("o_proj", "down_proj")  # what a Llama-layout block adds to the residual stream
__all__ = ["BoundaryStatistics", "angular_distances", "block_influence", "block_statistics", "blocks_for_fraction",
           "check_depth_target", "choose_blocks", "depth_method", "mask_depth", "prune_depth", "remove_blocks"]


def depth_method(strategy: str) -> DepthMethod:
    """The registered depth strategy ``strategy``; ConfigError naming those there are."""
    method = STRATEGIES.get(strategy) if strategy in STRATEGIES.names() else None
    if not isinstance(method, DepthMethod):
        able = [n for n in STRATEGIES.names() if isinstance(STRATEGIES.get(n), DepthMethod)]
        raise ConfigError(f"prune.strategy {strategy!r} does not choose decoder blocks (prune.structure 'depth'); "
                          f"the depth strategies are {', '.join(able)}")
    return method


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
def _boundary_hooks(blocks: nn.ModuleList, stats: BoundaryStatistics) -> Iterator[None]:
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


def block_statistics(model: nn.Module, calibration: torch.Tensor, batch_size: int = 8) -> BoundaryStatistics:
    """One eval-mode pass of the dense model over ``calibration`` ((sequences, seq_len) token ids)."""
    if calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0:
        raise ValueError("calibration must be a non-empty (n_samples, seq_len) tensor of token ids")
    blocks = decoder_blocks(model)
    stats = BoundaryStatistics(cos_sum=torch.zeros(len(blocks), dtype=torch.float64), tokens=0)
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
    """The sorted indices of the ``n`` blocks the depth strategy ``criterion`` removes."""
    method = depth_method(criterion)
    total = len(decoder_blocks(model))
    check_count(n, total)
    generator = torch.Generator().manual_seed(seed)
    if not method.needs_data:
        return method.choose(None, n, total, generator)
    if calibration is None:
        raise ValueError(f"depth strategy {criterion!r} needs calibration sequences")
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


def check_depth_target(model: nn.Module, strategy: str, sparsity: float | None, allocation: str = "uniform") -> int:
    """Everything :func:`mask_depth` would refuse before pruning, on the model as loaded; the block count."""
    depth_method(strategy)
    if allocation != "uniform":
        raise ConfigError(f"prune.allocation {allocation!r}: depth pruning removes whole blocks, with allocation "
                          "'uniform' (the allocations spread a sparsity over layers)")
    if sparsity is None:
        raise ConfigError("prune.sparsity: depth pruning needs the fraction of the decoder parameters to remove")
    for block in decoder_blocks(model):  # a zeroed block passes its input on only if its outputs carry no bias
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear) and name.endswith(OUTPUT_PROJECTIONS) and module.bias is not None:
                raise ConfigError(f"prune.structure 'depth': {type(model).__name__}'s {name} has a bias, so a block "
                                  "with zero weights would not pass its input on unchanged")
    return blocks_for_fraction(model, sparsity)


def mask_depth(model: nn.Module, calibration: torch.Tensor | None, strategy: str, *, sparsity: float | None,
               seed: int = 0, batch_size: int = 8, allocation: str = "uniform") -> tuple[LMPruneOutcome, list[int]]:
    """Zero every Linear weight of the blocks ``strategy`` removes for ``sparsity`` of the decoder
    blocks' parameters, in place; the mask (over every block Linear's weight, as
    :func:`prunebench.pruning.layerwise.prune_causal_lm`'s) and the removed blocks' indices.
    The masked model computes what the model without those blocks computes."""
    started = time.perf_counter()
    n = check_depth_target(model, strategy, sparsity, allocation)
    removed = choose_blocks(model, strategy, n, calibration, seed=seed, batch_size=batch_size)
    from prunebench.pruning.layerwise import LMPruneOutcome, _block_linears

    keep: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for index, linears in enumerate(_block_linears(model)):
            for name, linear in linears.items():
                keep[name] = torch.full(linear.weight.shape, index not in removed, dtype=torch.bool)
                if index in removed:
                    linear.weight.zero_()
    mask = Mask(keep)
    layer_sparsity = {name: 0.0 if bool(k.all()) else 1.0 for name, k in keep.items()}
    return LMPruneOutcome(mask=mask, layer_sparsity=layer_sparsity, seconds=time.perf_counter() - started), removed
