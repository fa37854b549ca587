"""Physical removal: a width-pruned (masked) Llama-layout model rebuilt as a smaller dense one.

Every block keeps the same numbers of key/value groups and MLP channels (the uniform allocation
of :mod:`prunebench.pruning.width.prune`), because transformers' ``LlamaConfig`` holds one
``intermediate_size``, one ``num_attention_heads`` and one ``num_key_value_heads`` for all
blocks; a mask with widths that differ between blocks is refused. The compact config says
``head_dim`` explicitly (it is no longer ``hidden_size / num_attention_heads``). Where a pruned
model carries output-projection biases (FLAP's compensation), the config sets
``attention_bias`` / ``mlp_bias`` and the other projections of that part get zero biases, so that
``from_pretrained`` rebuilds exactly this model (a few thousand more parameters, all zero).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from prunebench.pruning.width.layout import ATTENTION, MLP, BlockLayout, group_of_rows, kept_units, llama_blocks


def _shrunk(linear: nn.Linear, rows: torch.Tensor | None, columns: torch.Tensor | None, bias: bool) -> nn.Linear:
    """A new Linear holding the kept rows (outputs) and columns (inputs) of ``linear``."""
    weight = linear.weight.detach()
    if rows is not None:
        weight = weight[rows.to(weight.device)]
    if columns is not None:
        weight = weight[:, columns.to(weight.device)]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias:
            old = linear.bias.detach() if linear.bias is not None else torch.zeros(linear.out_features, device=weight.device,
                                                                                  dtype=weight.dtype)
            new.bias.copy_(old[rows.to(old.device)] if rows is not None else old)  # type: ignore[union-attr]
    new.train(linear.training)
    return new


def compact_width(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """A new model without the units ``mask`` prunes (``model`` is left as it is). Its outputs
    equal the masked model's: a removed key/value group had zero q, k, v rows and o columns, a
    removed channel zero gate and up rows and down column. ValueError where the mask breaks the
    width structure or keeps different widths in different blocks."""
    blocks = llama_blocks(model)
    kept = [kept_units(block, mask) for block in blocks]
    widths = {(int(groups.sum()), int(channels.sum())) for groups, channels in kept}
    if len(widths) != 1:
        raise ValueError(f"the mask keeps different widths in different blocks ({sorted(widths)}): transformers' Llama "
                         "config holds one width for all blocks")
    (kv_heads, channels), = widths
    attention_bias = any(b.linears[s].bias is not None for b in blocks for s in ATTENTION)
    mlp_bias = any(b.linears[s].bias is not None for b in blocks for s in MLP)

    compact: Any = copy.deepcopy(model)  # a transformers model: its config and blocks are read by name
    for block, layer, (kept_groups, kept_channels) in zip(blocks, compact.model.layers, kept):
        _shrink_block(block, layer, kept_groups, kept_channels, attention_bias, mlp_bias)
    config = compact.config
    group_size = blocks[0].group_size
    config.head_dim = blocks[0].head_dim
    config.num_key_value_heads = kv_heads
    config.num_attention_heads = kv_heads * group_size
    config.intermediate_size = channels
    config.attention_bias = attention_bias
    config.mlp_bias = mlp_bias
    return compact


def _shrink_block(block: BlockLayout, layer: Any, kept_groups: torch.Tensor, kept_channels: torch.Tensor,
                  attention_bias: bool, mlp_bias: bool) -> None:
    attention, mlp = layer.self_attn, layer.mlp
    for short in ("q_proj", "k_proj", "v_proj"):
        rows = kept_groups[group_of_rows(block, short)]
        setattr(attention, short, _shrunk(getattr(attention, short), rows, None, attention_bias))
    o_columns = kept_groups[group_of_rows(block, "o_proj")]
    attention.o_proj = _shrunk(attention.o_proj, None, o_columns, attention_bias)
    mlp.gate_proj = _shrunk(mlp.gate_proj, kept_channels, None, mlp_bias)
    mlp.up_proj = _shrunk(mlp.up_proj, kept_channels, None, mlp_bias)
    mlp.down_proj = _shrunk(mlp.down_proj, None, kept_channels, mlp_bias)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = int(kept_channels.sum())
