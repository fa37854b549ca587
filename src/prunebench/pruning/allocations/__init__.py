"""Layer allocations for language models: how a target sparsity is spread over decoder blocks.

One registered class per allocation (:mod:`.base` holds the contract): ``uniform`` (every block
at the target) and ``owl`` (outlier-weighted, Yin et al. 2024). A new allocation is one module
with a ``@register``-ed class plus its import line below; tests/test_structure_contract.py runs
every registered one.
"""

from __future__ import annotations

from prunebench.pruning.allocations.base import ALLOCATIONS, Allocation, BlockScores, parse_allocation, register

# The built-in allocations: importing a module registers its class.
from prunebench.pruning.allocations import uniform as uniform  # noqa: E402
from prunebench.pruning.allocations import owl as owl  # noqa: E402

__all__ = ["ALLOCATIONS", "Allocation", "BlockScores", "parse_allocation", "register"]
