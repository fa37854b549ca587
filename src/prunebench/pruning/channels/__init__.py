"""Channel (filter) pruning: coupled channel groups, channel scorers, and selection for a target.

- :mod:`~prunebench.pruning.channels.graph`: the adapter to Torch-Pruning's dependency graph
  (which channels go together, as parameter slices by name);
- :mod:`~prunebench.pruning.channels.scorers`: registered channel strategies and their options;
- :mod:`~prunebench.pruning.channels.select`: the fewest channels that reach a target, as a Mask;
- :mod:`~prunebench.pruning.channels.reconstruct`: ``channel_lasso`` and ``thinet``, selection by
  the next layer's reconstruction error and a least-squares update of its weights.
"""

from prunebench.pruning.channels.graph import (
    INSTALL_HINT,
    Batch,
    ChannelGraph,
    ChannelGroup,
    ChannelSlice,
    LossFn,
    Role,
    Scope,
    channel_graph,
    dependency_graph,
    excluded_layers,
    groups_from,
    groups_summary,
    is_depthwise,
    is_grouped,
    layers_matching,
    merge,
    require_torch_pruning,
    slices_of,
    ties_of,
    unique_first,
    units_of,
)
from prunebench.pruning.channels.scorers import (
    CHANNEL_SCORERS,
    ChannelScoreInputs,
    ChannelScorer,
    ChannelStrategy,
    SlimmingOptions,
    per_channel,
    register_channel_scorer,
    rows,
    score_channels,
    slimming_loss,
)
from prunebench.pruning.channels.reconstruct import ChannelLassoOptions, ThiNetOptions
from prunebench.pruning.channels.select import (
    ChannelAchieved,
    ChannelSelection,
    ChannelTarget,
    TargetKind,
    achieved,
    build_mask,
    kept_entries,
    prune_channels,
    prune_order,
    select_channels,
)

__all__ = [
    "CHANNEL_SCORERS", "INSTALL_HINT", "Batch", "ChannelAchieved", "ChannelGraph", "ChannelGroup", "ChannelLassoOptions",
    "ChannelScoreInputs", "ChannelScorer", "ChannelSelection", "ChannelSlice", "ChannelStrategy",
    "ChannelTarget", "LossFn", "Role", "Scope", "SlimmingOptions", "TargetKind", "ThiNetOptions", "achieved", "build_mask",
    "channel_graph", "dependency_graph", "excluded_layers", "groups_from", "groups_summary", "is_depthwise",
    "is_grouped", "kept_entries", "layers_matching", "merge", "per_channel", "prune_channels", "prune_order",
    "register_channel_scorer", "require_torch_pruning", "rows", "score_channels", "select_channels",
    "slices_of", "slimming_loss", "ties_of", "unique_first", "units_of",
]
