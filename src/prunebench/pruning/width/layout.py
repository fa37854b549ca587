"""The width units of a Llama-layout decoder block, and where each one's weights sit.

A block has ``self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj``. With ``H`` query heads,
``K`` key/value heads (``H`` a multiple of ``K``: grouped-query attention) and head size ``d``,
key/value group ``g`` owns rows ``g*d .. (g+1)*d`` of ``k_proj`` and ``v_proj``, rows
``g*(H/K)*d .. (g+1)*(H/K)*d`` of ``q_proj`` and the same columns of ``o_proj`` (transformers'
``repeat_kv`` gives query head ``h`` the key/value head ``h // (H/K)``). MLP channel ``c`` owns
row ``c`` of ``gate_proj`` and ``up_proj`` and column ``c`` of ``down_proj``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from prunebench.errors import ConfigError

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BlockLayout:
    """One decoder block's Linears (by short name) and its attention geometry."""

    prefix: str  # e.g. "model.layers.3."
    linears: dict[str, nn.Linear]  # q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
    heads: int  # query heads H
    kv_heads: int  # key/value heads K
    head_dim: int  # d

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (H / K)."""
        return self.heads // self.kv_heads

    @property
    def channels(self) -> int:
        """MLP intermediate channels."""
        return self.linears["gate_proj"].out_features

    @property
    def hidden(self) -> int:
        return self.linears["o_proj"].out_features

    def weight_name(self, short: str) -> str:
        """The full parameter name of a Linear's weight, as in :func:`lm_prunable`."""
        path = "self_attn" if short in ATTENTION else "mlp"
        return f"{self.prefix}{path}.{short}.weight"

    def group_params(self) -> int:
        """Weights in one key/value group: q and o (H/K heads) plus k and v (one head)."""
        return self.hidden * self.head_dim * (2 * self.group_size + 2)

    def channel_params(self) -> int:
        """Weights in one MLP channel: a row of gate and up, a column of down."""
        return 3 * self.hidden

    def params(self) -> int:
        """Weights of the block's seven Linears."""
        return self.kv_heads * self.group_params() + self.channels * self.channel_params()


def llama_blocks(model: nn.Module) -> list[BlockLayout]:
    """Every decoder block of a Llama-layout model; ConfigError naming what is missing otherwise."""
    config = getattr(model, "config", None)
    layers = getattr(getattr(model, "model", None), "layers", None)
    if config is None or not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ConfigError(f"prune.structure: width pruning needs a Llama-layout model (model.layers), not {type(model).__name__}")
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    blocks = []
    for index, layer in enumerate(layers):
        found: dict[str, nn.Linear] = {}
        for path, names in (("self_attn", ATTENTION), ("mlp", MLP)):
            part = getattr(layer, path, None)
            for name in names:
                linear = getattr(part, name, None)
                if not isinstance(linear, nn.Linear):
                    raise ConfigError(f"prune.structure: width pruning needs {path}.{name} as an nn.Linear in every decoder "
                                      f"block (Llama layout); block {index} of {type(model).__name__} has none")
                found[name] = linear
        attention = layer.self_attn
        block_heads = found["q_proj"].out_features // head_dim
        block_kv = found["k_proj"].out_features // head_dim
        if getattr(attention, "head_dim", head_dim) != head_dim or block_heads % block_kv:
            raise ConfigError(f"prune.structure: block {index} has {block_heads} query heads for {block_kv} key/value "
                              f"heads of size {head_dim}: not a grouped-query attention width pruning can keep")
        blocks.append(BlockLayout(f"model.layers.{index}.", found, block_heads, block_kv, head_dim))
    return blocks


def group_of_rows(block: BlockLayout, short: str) -> torch.Tensor:
    """For a q/k/v_proj, the key/value group of each output row; for o_proj, of each input column."""
    size = block.head_dim * (block.group_size if short in ("q_proj", "o_proj") else 1)
    count = block.kv_heads * size
    return torch.arange(count) // size


def unit_masks(block: BlockLayout, kept_groups: torch.Tensor, kept_channels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The keep masks of the block's seven weights (full names) for the kept groups and channels
    (boolean vectors of ``K`` and of the intermediate size)."""
    masks = {}
    for short, linear in block.linears.items():
        shape = linear.weight.shape
        if short in ("q_proj", "k_proj", "v_proj"):
            keep = kept_groups[group_of_rows(block, short)].unsqueeze(1).expand(shape)
        elif short == "o_proj":
            keep = kept_groups[group_of_rows(block, short)].unsqueeze(0).expand(shape)
        elif short in ("gate_proj", "up_proj"):
            keep = kept_channels.unsqueeze(1).expand(shape)
        else:  # down_proj
            keep = kept_channels.unsqueeze(0).expand(shape)
        masks[block.weight_name(short)] = keep.clone()
    return masks


def kept_units(block: BlockLayout, mask: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept key/value groups and MLP channels a mask says (read from k_proj's and gate_proj's
    rows); ValueError unless the mask keeps or prunes each unit whole, in all its weights."""
    get = mask.__getitem__
    k_rows = get(block.weight_name("k_proj")).reshape(block.kv_heads, -1)
    groups = k_rows.all(dim=1)
    channels = get(block.weight_name("gate_proj")).all(dim=1)
    expected = unit_masks(block, groups, channels)
    broken = [name for name, keep in expected.items() if not torch.equal(get(name).cpu(), keep)]
    if broken:
        raise ValueError(f"mask breaks the width structure: {', '.join(broken)} keep part of a key/value group or "
                         "MLP channel (a query head without its key/value group, or half a channel)")
    return groups, channels
