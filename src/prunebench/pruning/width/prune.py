"""Width pruning of a causal language model: whole MLP channels and key/value groups of every
decoder block, scored by a width strategy (:mod:`prunebench.pruning.scores.width`), selected per
block (uniform allocation: the same count in every block) and masked to zero in place.
:func:`prunebench.pruning.width.compact.compact_width` then rebuilds the masked model as a smaller
dense one.

Counts per block, for ``sparsity`` ``s`` (the fraction of the structure's parameters removed):
``mlp_channels`` removes ``round(s * I)`` of the ``I`` channels; ``attention_heads``
``round(s * K)`` of the ``K`` key/value groups; ``width`` ``floor(s * K)`` groups, then the number
of channels whose parameters bring the block's removed Linear parameters closest to ``s`` of
them. A count that removes every unit, or no unit where the structure is attention only, is
refused with one line that lists what the model can reach.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.layerwise import LMPruneOutcome, _first_block_inputs, _inference, _run_block, decoder_blocks
from prunebench.pruning.mask import Mask
from prunebench.pruning.scores.base import STRATEGIES
from prunebench.pruning.scores.width import BlockStatistics, InputStatistics, WidthMethod
from prunebench.pruning.selection import select
from prunebench.pruning.structures import parse_structure
from prunebench.pruning.structures.lm_width import WidthStructure, width_structures
from prunebench.pruning.width.layout import BlockLayout, group_of_rows, llama_blocks, unit_masks

OUTPUT_PROJECTIONS = ("o_proj", "down_proj")


def width_method(strategy: str, structure: str) -> WidthMethod:
    """The registered width strategy ``strategy``; ConfigError naming those that score ``structure``."""
    method = STRATEGIES.get(strategy)
    if not isinstance(method, WidthMethod):
        able = [n for n in STRATEGIES.names() if isinstance(STRATEGIES.get(n), WidthMethod)]
        raise ConfigError(f"prune.strategy {strategy!r} does not score prune.structure {structure!r}, whose whole units "
                          f"are scored by {', '.join(able)}")
    return method


def removal_counts(block: BlockLayout, structure: WidthStructure, sparsity: float) -> tuple[int, int]:
    """(key/value groups, MLP channels) to remove from ``block`` (see the module docstring)."""
    groups = channels = 0
    if structure.parts == ("mlp",):
        channels = round(sparsity * block.channels)
    elif structure.parts == ("heads",):
        groups = round(sparsity * block.kv_heads)
    else:
        groups = math.floor(sparsity * block.kv_heads)
        rest = sparsity * block.params() - groups * block.group_params()
        channels = max(0, round(rest / block.channel_params()))
    steps = ", ".join(f"{g / block.kv_heads:g}" for g in range(1, block.kv_heads))
    if groups >= block.kv_heads:
        raise ConfigError(f"prune.sparsity: {sparsity} removes all {block.kv_heads} key/value groups of a block; "
                          f"attention_heads reaches {steps or 'nothing: one group only'}")
    if structure.parts == ("heads",) and groups == 0:
        raise ConfigError(f"prune.sparsity: {sparsity} removes no key/value group: with {block.kv_heads} groups a "
                          f"block's attention is pruned in steps of 1/{block.kv_heads} ({steps or 'none'})")
    if channels >= block.channels:
        raise ConfigError(f"prune.sparsity: {sparsity} removes all {block.channels} MLP channels of a block "
                          f"(at most {(block.channels - 1) / block.channels:.4f} of them)")
    return groups, channels


# ---------------------------------------------------------------------------------------------
# Calibration statistics


class _Moments:
    """Running sums of one Linear input, in float64: count, sum and sum of squares per feature."""

    def __init__(self) -> None:
        self.tokens = 0
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        rows = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        total, squares = rows.sum(dim=0), rows.square().sum(dim=0)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.tokens += rows.shape[0]

    def result(self) -> InputStatistics:
        assert self.total is not None and self.squares is not None
        n = self.tokens
        mean = self.total / n
        # sample variance (n - 1), from the sums: sum((x - mean)^2) = sum(x^2) - n mean^2
        variance = ((self.squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0)
        return InputStatistics(tokens=n, sq_norms=self.squares.float(), mean=mean.float(), variance=variance.float())


def _observe(block_module: nn.Module, layout: BlockLayout, hidden: list[torch.Tensor],
             kwargs: list[dict[str, Any]]) -> tuple[dict[str, InputStatistics], list[torch.Tensor]]:
    """The output projections' input statistics over one pass of the block, and its outputs."""
    moments = {short: _Moments() for short in OUTPUT_PROJECTIONS}
    handles = [layout.linears[short].register_forward_pre_hook(lambda _m, args, s=short: moments[s].add(args[0]))
               for short in OUTPUT_PROJECTIONS]
    outputs = []
    try:
        for x, extra in zip(hidden, kwargs):
            out = block_module(x, **extra)
            outputs.append(out[0] if isinstance(out, (tuple, list)) else out)
    finally:
        for handle in handles:
            handle.remove()
    return {short: m.result() for short, m in moments.items()}, outputs


@contextmanager
def _gradients_of(model: nn.Module, wanted: list[torch.Tensor]) -> Iterator[None]:
    """Inside, only ``wanted`` of ``model``'s parameters require gradients (so backward fills no
    other ``.grad``); after, every parameter's flag and ``.grad`` are as they were."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    wanted_ids = {id(p) for p in wanted}
    try:
        for p in params:
            p.requires_grad_(id(p) in wanted_ids)
            p.grad = None
        with torch.enable_grad():
            yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad


def block_gradients(model: nn.Module, blocks: list[BlockLayout], calibration: torch.Tensor,
                    batch_size: int) -> list[dict[str, torch.Tensor]]:
    """dL/dW of every block Linear, ``L`` the dense model's mean next-token loss over all the
    calibration sequences (batches weighted by their size), one backward pass per batch."""
    weights = [linear.weight for block in blocks for linear in block.linears.values()]
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        with _gradients_of(model, weights):
            for batch in calibration.split(batch_size):
                loss = model(input_ids=batch, labels=batch, use_cache=False).loss
                (loss * (batch.shape[0] / calibration.shape[0])).backward()
            return [{short: linear.weight.grad.detach().clone() for short, linear in block.linears.items()}  # type: ignore[union-attr]
                    for block in blocks]
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode


# ---------------------------------------------------------------------------------------------
# Selection, masking and FLAP's compensation


def _keep(scores: torch.Tensor, remove: int, name: str, seed: int) -> torch.Tensor:
    """Keep all but the ``remove`` lowest scores; ties at the boundary drawn by ``seed``."""
    return select({name: scores.float()}, scores.numel() - remove, "layer", seed=seed)[name]


def _compensate(layout: BlockLayout, short: str, removed: torch.Tensor, mean: torch.Tensor) -> None:
    """FLAP's bias compensation: add the removed inputs' mean contribution to ``short``'s bias."""
    linear = layout.linears[short]
    weight = linear.weight.detach().to(torch.float64)
    shift = weight[:, removed] @ mean.to(weight.device, torch.float64)[removed]
    if linear.bias is None:
        linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=linear.weight.dtype, device=linear.weight.device))
    with torch.no_grad():
        linear.bias.add_(shift.to(linear.bias.dtype))


def _prune_block(layout: BlockLayout, method: WidthMethod, stats: BlockStatistics, counts: tuple[int, int],
                 generator: torch.Generator, seed: int) -> dict[str, torch.Tensor]:
    groups_out, channels_out = counts
    group_scores, channel_scores = method.score(layout, stats, generator)
    kept_groups = _keep(group_scores, groups_out, f"{layout.prefix}kv_groups", seed)
    kept_channels = _keep(channel_scores, channels_out, f"{layout.prefix}mlp_channels", seed)
    if method.compensates:
        assert stats.inputs is not None
        o_columns = ~kept_groups[group_of_rows(layout, "o_proj")]
        if o_columns.any():
            _compensate(layout, "o_proj", o_columns, stats.inputs["o_proj"].mean)
        if (~kept_channels).any():
            _compensate(layout, "down_proj", ~kept_channels, stats.inputs["down_proj"].mean)
    masks = unit_masks(layout, kept_groups, kept_channels)
    for short, linear in layout.linears.items():
        linear.weight.masked_fill_(~masks[layout.weight_name(short)].to(linear.weight.device), 0)
    return masks


def check_width_target(model: nn.Module, strategy: str, structure: str, sparsity: float | None,
                       allocation: str = "uniform") -> None:
    """Everything :func:`prune_width` would refuse before pruning, on the model as loaded."""
    parsed = parse_structure(structure)
    if not isinstance(parsed, WidthStructure):
        raise ConfigError(f"prune.structure {structure!r} is not a width structure ({', '.join(width_structures())})")
    width_method(strategy, structure)
    if allocation != "uniform":
        raise ConfigError(f"prune.allocation {allocation!r}: width structures are pruned with allocation 'uniform' "
                          "(the same width in every block, which the compact model's config can describe)")
    if sparsity is None or not 0 < sparsity < 1:
        raise ConfigError(f"prune.sparsity must be in (0, 1), got {sparsity}")
    for block in llama_blocks(model):
        removal_counts(block, parsed, sparsity)


def prune_width(
    model: nn.Module,
    calibration: torch.Tensor,
    strategy: str,
    *,
    structure: str,
    sparsity: float | None,
    allocation: str = "uniform",
    seed: int = 0,
    batch_size: int = 8,
) -> LMPruneOutcome:
    """Prune whole units of ``model``'s decoder blocks in place: their weights become exactly zero
    (FLAP also writes output-projection biases). The mask covers every block Linear's weight, as
    :func:`prunebench.pruning.layerwise.prune_causal_lm`'s does. Modes, gradients and the global
    RNG are left as they were (``seed`` drives a generator of its own)."""
    started = time.perf_counter()
    check_width_target(model, strategy, structure, sparsity, allocation)
    parsed = parse_structure(structure)
    assert isinstance(parsed, WidthStructure) and sparsity is not None
    method = width_method(strategy, structure)
    blocks = llama_blocks(model)
    counts = [removal_counts(block, parsed, sparsity) for block in blocks]
    needs_data = method.width_needs != "nothing"
    if needs_data and (calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0):
        raise ValueError("calibration must be a non-empty (n_samples, seq_len) tensor of token ids")
    generator = torch.Generator().manual_seed(seed)
    calibration = calibration.to(next(model.parameters()).device)
    keep: dict[str, torch.Tensor] = {}

    gradients = block_gradients(model, blocks, calibration, batch_size) if method.width_needs == "gradients" else None
    with _inference(model):
        if method.width_needs in ("norms", "fluctuation"):
            inputs = _first_block_inputs(model, calibration, batch_size)
            for layout, block_module, count in zip(blocks, decoder_blocks(model), counts):
                observed, outputs = _observe(block_module, layout, inputs.hidden, inputs.kwargs)
                keep.update(_prune_block(layout, method, BlockStatistics(inputs=observed), count, generator, seed))
                if method.sequential:  # the pruned block's outputs feed the next block
                    _run_block(block_module, inputs)
                else:  # the dense block's
                    inputs.hidden[:] = outputs
        else:
            for index, (layout, count) in enumerate(zip(blocks, counts)):
                stats = BlockStatistics(gradients=gradients[index] if gradients is not None else None)
                keep.update(_prune_block(layout, method, stats, count, generator, seed))

    mask = Mask({name: k.cpu() for name, k in keep.items()})
    layer_sparsity = {name: 1.0 - float(k.to(torch.float64).mean()) for name, k in keep.items()}
    return LMPruneOutcome(mask=mask, layer_sparsity=layer_sparsity, seconds=time.perf_counter() - started)


def check_width_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """ValueError unless ``mask`` keeps or prunes every unit of every block whole."""
    from prunebench.pruning.width.layout import kept_units

    for block in llama_blocks(model):
        kept_units(block, mask)
