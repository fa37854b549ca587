"""One-shot pruning of a causal language model, decoder block by decoder block.

The prunable weights are the ``nn.Linear`` layers inside the decoder blocks; embeddings,
norms and the LM head are not. Strategies with calibration statistics (Wanda's input norms,
SparseGPT's Hessian) see each block's inputs as the outputs of the blocks before it *after*
those were pruned (SparseGPT's sequential recipe, which Wanda follows): the inputs of a block
are captured once, run through the dense block with hooks on its Linear inputs (Linears that
read the same tensor, q/k/v or gate/up, share one statistic), the block's Linears are pruned,
and the pruned block is run again to make the next block's inputs. Data-free strategies
(magnitude, random) need no forward pass at all.

Allocation across blocks is a registered :class:`prunebench.pruning.allocations.Allocation`:
``uniform`` (every Linear at the target sparsity) or ``owl`` (Outlier Weighed Layerwise
sparsity, Yin et al. 2024, from the dense model's Wanda scores per block, which this driver
computes for the allocations that ask for them).

Scopes (unstructured only; N:M is per group of M inputs): ``row`` compares within each output
row, ``layer`` within each Linear, ``global`` across all of them. Each strategy says which it
accepts (its layer form, :class:`prunebench.pruning.scores.base.LayerPruner`): Wanda row or
layer (row by default, as in the paper), SparseGPT layer (the paper: its mask per block of
columns over all rows) or row, OBS layer (as for classifiers) or row, magnitude all three
(layer by default: one threshold per Linear, the papers' magnitude baseline, Wanda's
``prune_magnitude``), random all three (row by default); global only for data-free scores the
method declares comparable across layers (:class:`prunebench.pruning.scores.base.Method`).
Masks come from the same selection functions as a classifier's (:mod:`prunebench.pruning.selection`,
the N:M structure's), so ties at the keep boundary are drawn by the run's seed, never by position.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.pruning.allocations import Allocation, parse_allocation
from prunebench.pruning.mask import Mask
from prunebench.pruning.moments import Moments
from prunebench.pruning.obs import add_to_hessian
from prunebench.pruning.scores.base import LANGUAGE_MODEL, STRATEGIES, LayerPruner, LayerStatistics, LayerTarget, Method
from prunebench.pruning.selection import select, select_rows
from prunebench.pruning.structures import NM, language_model_structures, parse_structure, spellings

# Where causal LMs keep their decoder blocks (Llama, Mistral, Qwen, Phi: model.layers; OPT:
# model.decoder.layers; GPT-NeoX: gpt_neox.layers; GPT-J/Falcon-style: transformer.h).
BLOCK_PATHS = ("model.layers", "model.decoder.layers", "gpt_neox.layers", "transformer.h")


@dataclasses.dataclass(frozen=True)
class LMPruneOutcome:
    mask: Mask  # over lm_prunable(model), True = kept
    layer_sparsity: dict[str, float]  # fraction pruned of each prunable weight
    seconds: float


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's decoder blocks; ConfigError naming the model class if it has none."""
    for path in BLOCK_PATHS:
        try:
            blocks = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList) and any(isinstance(m, nn.Linear) for b in blocks for m in b.modules()):
            return blocks
    raise ConfigError(
        f"model: {type(model).__name__} has no decoder blocks of nn.Linear layers to prune "
        f"(looked for {', '.join(BLOCK_PATHS)})"
    )


def _block_linears(model: nn.Module) -> list[dict[str, nn.Linear]]:
    """Per decoder block, its Linear layers by the full name of their weight."""
    blocks = decoder_blocks(model)
    prefix = next(name for name, module in model.named_modules() if module is blocks)
    return [
        {f"{prefix}.{index}.{name}.weight": module for name, module in block.named_modules() if isinstance(module, nn.Linear)}
        for index, block in enumerate(blocks)
    ]


def lm_prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of the nn.Linear layers inside the decoder blocks, by parameter name."""
    return {name: linear.weight for linears in _block_linears(model) for name, linear in linears.items()}


# ---------------------------------------------------------------------------------------------
# Calibration: block inputs and statistics at the Linear inputs


class _Accumulator:
    """The running statistic of one Linear input: squared feature norms (with ``moments``, also
    the features' sums and variances), or the Hessian."""

    def __init__(self, kind: str) -> None:
        self.kind, self.tokens = kind, 0
        self.sq_norms: torch.Tensor | None = None
        self.hessian: torch.Tensor | None = None
        self.moments = Moments() if kind == "moments" else None

    def add(self, x: torch.Tensor) -> None:
        rows = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
        if self.kind == "hessian":
            self.hessian, _ = add_to_hessian(self.hessian, rows, self.tokens)
        else:
            squares = rows.square().sum(dim=0)
            self.sq_norms = squares if self.sq_norms is None else self.sq_norms + squares
        if self.moments is not None:
            self.moments.add(x)
        self.tokens += rows.shape[0]

    def result(self) -> LayerStatistics:
        moments = self.moments.fields() if self.moments is not None else {}
        return LayerStatistics(tokens=self.tokens, sq_norms=self.sq_norms, hessian=self.hessian, **moments)


@contextmanager
def _statistics_hooks(linears: Mapping[str, nn.Linear], kind: str) -> Iterator[dict[str, _Accumulator]]:
    """Hooks on the Linear inputs; Linears fed the very same tensor share one accumulator."""
    stats: dict[str, _Accumulator] = {}
    last: list[Any] = [None, None]  # (input tensor, its accumulator) of the latest hook call

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0]
            if last[0] is x:
                stats.setdefault(name, last[1])
                return
            accumulator = stats.setdefault(name, _Accumulator(kind))
            accumulator.add(x)
            last[0], last[1] = x, accumulator

        return hook

    handles = [linear.register_forward_pre_hook(hook_for(name)) for name, linear in linears.items()]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()
        last[0] = last[1] = None


class _Captured(Exception):
    """Raised by the stand-in for the last block once every block's inputs are known."""


@dataclasses.dataclass
class _BlockInputs:
    """The inputs of the current block, one entry per calibration batch.

    ``per_block[b][i]``: the keyword arguments the model passes block ``b`` for batch ``i``. They
    differ between blocks where blocks differ in kind (Gemma 3 alternates sliding-window and full
    attention: another mask and other rotary embeddings); :func:`_run_block` moves on to the next."""

    hidden: list[torch.Tensor]
    per_block: list[list[dict[str, Any]]]
    block: int = 0

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        return self.per_block[self.block]


class _StandIn(nn.Module):
    """Takes a decoder block's place while its inputs are captured: records them and passes the
    hidden states on unchanged (nothing is computed), the last one stops the forward pass."""

    def __init__(self, block: nn.Module, seen: list[dict[str, Any]], first: list[torch.Tensor] | None, last: bool) -> None:
        super().__init__()
        self.seen, self.first, self.last = seen, first, last
        if hasattr(block, "attention_type"):  # some models pick the block's mask by it
            self.attention_type = block.attention_type

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.pop("hidden_states")
        if self.first is not None:
            self.first.append(hidden.detach())
        self.seen.append({k: v for k, v in kwargs.items() if k != "hidden_states"})
        if self.last:
            raise _Captured
        return hidden


def _first_block_inputs(model: nn.Module, calibration: torch.Tensor, batch_size: int) -> _BlockInputs:
    """The first block's hidden states and every block's keyword arguments, per batch."""
    blocks = decoder_blocks(model)
    captured = _BlockInputs([], [[] for _ in blocks])
    originals = list(blocks)
    for index, block in enumerate(originals):
        blocks[index] = _StandIn(block, captured.per_block[index], captured.hidden if index == 0 else None,
                                 last=index == len(originals) - 1)
    try:
        for batch in calibration.split(batch_size):
            try:
                model(input_ids=batch, use_cache=False)
            except _Captured:
                pass
    finally:
        for index, block in enumerate(originals):
            blocks[index] = block
    return captured


def _run_block(block: nn.Module, inputs: _BlockInputs) -> None:
    """The block's outputs become the inputs of the next block."""
    for index, (hidden, kwargs) in enumerate(zip(inputs.hidden, inputs.kwargs)):
        out = block(hidden, **kwargs)
        inputs.hidden[index] = out[0] if isinstance(out, (tuple, list)) else out
    inputs.block += 1


def _observe(block: nn.Module, linears: Mapping[str, nn.Linear], inputs: _BlockInputs, kind: str) -> dict[str, LayerStatistics]:
    """One pass of the block over the calibration inputs (leaving them as they were)."""
    with _statistics_hooks(linears, kind) as stats:
        for hidden, kwargs in zip(inputs.hidden, inputs.kwargs):
            block(hidden, **kwargs)
    return {name: stats[name].result() for name in linears}


# ---------------------------------------------------------------------------------------------
# Selection from scores


def keep_from_scores(scores: torch.Tensor, target: LayerTarget, *, name: str = "", seed: int = 0) -> torch.Tensor:
    """The keep mask of the ``(out, in)`` weight ``name`` from its scores (low pruned), by the
    selection every model family uses (:mod:`prunebench.pruning.selection`): N:M keeps the ``n``
    highest of every ``m`` consecutive inputs; otherwise ``round(sparsity * in)`` per row
    (scope ``row``) or ``round(sparsity * numel)`` in the layer (``layer``) are pruned, earlier
    pruned weights first and kept pruned. Ties at the keep boundary are drawn by ``seed`` (the
    run's) and ``name``, as for a classifier's weights."""
    if target.n is not None and target.m is not None:
        if target.pruned is not None:  # earlier pruned weights rank lowest in their groups
            scores = scores.to(torch.float32).masked_fill(target.pruned.to(scores.device), -torch.inf)
        return NM(target.n, target.m).select({name: scores}, 0, seed=seed)[name]
    assert target.sparsity is not None
    previous = None if target.pruned is None else Mask({name: ~target.pruned.to(scores.device)})
    if target.scope == "row":
        return select_rows({name: scores}, target.sparsity, previous, seed=seed)[name]
    keep = scores.numel() - round(target.sparsity * scores.numel())
    return select({name: scores}, keep, "layer", previous, seed=seed)[name]


# ---------------------------------------------------------------------------------------------
# Allocation: the dense scores an allocation may ask for (prunebench.pruning.allocations)


def _dense_wanda_scores(model: nn.Module, calibration: torch.Tensor, batch_size: int) -> Iterator[list[torch.Tensor]]:
    """The Wanda scores ``|W| ||X||_2`` of every block's Linears on the dense model, block by
    block (each block's inputs are the dense outputs of the block before it)."""
    inputs = _first_block_inputs(model, calibration, batch_size)
    blocks = decoder_blocks(model)
    for block, linears in zip(blocks, _block_linears(model)):
        stats = _observe(block, linears, inputs, "norms")
        yield [lin.weight.detach().abs().to(torch.float32) * stats[n].sq_norms.sqrt().unsqueeze(0)  # type: ignore[union-attr]
               for n, lin in linears.items()]
        _run_block(block, inputs)


# ---------------------------------------------------------------------------------------------
# The driver


def _parse_target(structure: str, sparsity: float | None) -> tuple[int | None, int | None]:
    parsed = parse_structure(structure)
    if not parsed.language_model:
        raise ConfigError(f"prune.structure {structure!r}: language models are pruned {spellings(language_model_structures())}")
    pattern = parsed.layer_pattern()
    if pattern is not None:
        if sparsity is not None:
            raise ConfigError(f"prune.structure {structure!r} fixes the sparsity at 1 - N/M: leave the sparsity out")
        return pattern
    if sparsity is None or not 0 < sparsity < 1:
        raise ConfigError(f"sparsity must be in (0, 1), got {sparsity}")
    return None, None


def _lm_pruner(strategy: str) -> tuple[Method, LayerPruner]:
    """The registered method and its layer form; ConfigError where it has none."""
    method = STRATEGIES.get(strategy)
    if method.layer is None:
        known = [n for n in STRATEGIES.names() if STRATEGIES.get(n).prunes(LANGUAGE_MODEL)]
        raise ConfigError(f"prune.strategy {strategy!r} does not prune language models (those that do: {', '.join(known)})")
    return method, method.layer


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in zip(model.modules(), modes):
            module.training = mode


def prune_causal_lm(
    model: nn.Module,
    calibration: torch.Tensor,
    strategy: str,
    *,
    sparsity: float | None = None,
    structure: str = "unstructured",
    scope: str | None = None,
    allocation: str | Allocation = "uniform",
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    previous: Mask | None = None,
    batch_size: int = 8,
) -> LMPruneOutcome:
    """Prune ``model``'s decoder-block Linears in place with ``strategy``, one-shot.

    ``calibration``: ``(n_samples, seq_len)`` token ids, run ``batch_size`` samples at a time.
    ``sparsity`` (unstructured) or ``structure`` ``"N:M"``; ``scope`` None takes the
    strategy's default. ``allocation``: a registered name or an :class:`Allocation` with
    hyperparameters of its own (``Owl(m=4.0)``). ``previous``: an earlier mask over the same weights, kept pruned (the
    new mask only shrinks it). Pruned weights are exactly zero on return; the model's modes,
    torch's threads and the global RNG are left as they were (``seed`` drives a generator of
    its own)."""
    started = time.perf_counter()
    registered, pruner = _lm_pruner(strategy)
    parsed_options = registered.parse_options(options)
    n, m = _parse_target(structure, sparsity)
    scope = scope or pruner.default_scope
    registered.check_scope(scope, LANGUAGE_MODEL)
    allocator = parse_allocation(allocation) if isinstance(allocation, str) else allocation
    allocator.check(fixed_sparsity=m is not None, scope=scope)
    if previous is not None and m is not None:
        raise ConfigError(f"prune.structure {structure!r} cannot refine an earlier mask")
    blocks_linears = _block_linears(model)
    for linears in blocks_linears:
        for name, linear in linears.items():
            if m is not None and linear.in_features % m:
                raise ConfigError(f"prune.structure {structure!r}: M={m} does not divide the input dimension {linear.in_features} of {name}")
    needs_data = pruner.statistics != "none" or allocator.needs_scores
    if needs_data and (calibration.dim() != 2 or calibration.dtype != torch.long or calibration.numel() == 0):
        raise ValueError("calibration must be a non-empty (n_samples, seq_len) tensor of token ids")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    calibration = calibration.to(device)

    with _inference(model):
        block_sparsity = allocator.sparsities(sparsity, len(blocks_linears),
                                              lambda: _dense_wanda_scores(model, calibration, batch_size))
        targets = {
            name: LayerTarget(sparsity=block_sparsity[index], n=n, m=m, scope="layer" if scope == "global" else scope,  # type: ignore[arg-type]
                              pruned=None if previous is None else ~previous[name].to(device))
            for index, linears in enumerate(blocks_linears) for name in linears
        }
        keep: dict[str, torch.Tensor] = {}
        if pruner.statistics == "none":
            empty = LayerStatistics(tokens=0)
            weights = {name: lin.weight for linears in blocks_linears for name, lin in linears.items()}
            scores = {name: pruner.score(w, empty, parsed_options, generator) for name, w in weights.items()}  # type: ignore[misc]
            if scope == "global" and m is None:  # exactly round(sparsity * total) of all the weights
                assert sparsity is not None
                total = sum(w.numel() for w in weights.values())
                keep = dict(select(scores, total - round(sparsity * total), "global", previous, seed=seed))
            else:
                keep = {name: keep_from_scores(scores[name], targets[name], name=name, seed=seed) for name in weights}
            for name, w in weights.items():
                w.masked_fill_(~keep[name], 0)
        else:
            inputs = _first_block_inputs(model, calibration, batch_size)
            blocks = decoder_blocks(model)
            for index, (block, linears) in enumerate(zip(blocks, blocks_linears)):
                stats = _observe(block, linears, inputs, pruner.statistics)
                for name, linear in linears.items():
                    keep[name] = _prune_linear(pruner, linear, stats[name], targets[name], parsed_options, generator,
                                               name=name, seed=seed)
                if index + 1 < len(blocks):
                    _run_block(block, inputs)  # the pruned block's outputs feed the next block

    mask = Mask({name: k.cpu() for name, k in keep.items()})
    layer_sparsity = {name: 1.0 - float(k.to(torch.float64).mean()) for name, k in keep.items()}
    return LMPruneOutcome(mask=mask, layer_sparsity=layer_sparsity, seconds=time.perf_counter() - started)


def _prune_linear(
    pruner: LayerPruner, linear: nn.Linear, stats: LayerStatistics, target: LayerTarget, options: Any,
    generator: torch.Generator, *, name: str, seed: int,
) -> torch.Tensor:
    weight = linear.weight
    if pruner.prune is not None:
        new, keep = pruner.prune(weight, stats, target, options)
        weight.copy_(new.to(weight.dtype))
    else:
        assert pruner.score is not None
        scores = pruner.score(weight, stats, options, generator)
        keep = keep_from_scores(scores, target, name=name, seed=seed)
        if pruner.refine is not None:  # moves the selection (DSnoT), its counts unchanged
            keep = pruner.refine(weight, stats, scores, keep, target, options, name=name, generator=generator)
        if pruner.update is not None:  # on the weight as it was scored; the mask is applied after it
            weight.copy_(pruner.update(weight, stats, keep, options).to(weight.dtype))
    weight.masked_fill_(~keep, 0)  # pruned weights exactly zero, whatever the update wrote
    return keep
