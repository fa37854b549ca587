"""The first two moments of each Linear input feature over the calibration tokens, as DSnoT's
reference code measures them (``lib/layerwrapper.py`` of zyxxmu/DSnoT): the sum of each
feature over all tokens, and each feature's variance over the tokens of one calibration
sequence (biased), averaged over the sequences. The reference runs one sequence per forward
pass and averages the per-pass variances, so a batch of sequences is split into its sequences
here and the statistic does not depend on the batch size."""

from __future__ import annotations

from typing import Any

import torch


class Moments:
    """Running sums for :class:`prunebench.pruning.scores.base.LayerStatistics`' ``sums``,
    ``variance`` and ``sequences``."""

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None
        self.variance_sum: torch.Tensor | None = None
        self.sequences = 0

    def add(self, x: torch.Tensor) -> None:
        """``x``: ``(..., seq_len, in)``, one or more sequences of tokens (a 2-D input is one)."""
        sequences = x.detach().reshape(-1, *x.shape[-2:]).to(torch.float32)
        sums = sequences.sum(dim=(0, 1))
        variances = sequences.var(dim=1, unbiased=False).sum(dim=0)
        self.sums = sums if self.sums is None else self.sums + sums
        self.variance_sum = variances if self.variance_sum is None else self.variance_sum + variances
        self.sequences += sequences.shape[0]

    def fields(self) -> dict[str, Any]:
        variance = None if self.variance_sum is None else self.variance_sum / self.sequences
        return {"sums": self.sums, "variance": variance, "sequences": self.sequences}
