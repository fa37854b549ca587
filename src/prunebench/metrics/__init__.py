"""Honest metrics: sizes, MACs, accuracy. Each has one definition (docs/metrics.md).

The names below load their modules when first used (:mod:`prunebench.lazy`): the metric
declarations (:mod:`prunebench.metrics.declared`) are read without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.lazy import lazy_getattr

if TYPE_CHECKING:
    from prunebench.metrics.accuracy import AccuracyMetrics, evaluate
    from prunebench.metrics.flops import MacMetrics, dense_macs, mac_metrics
    from prunebench.metrics.size import SizeMetrics, size_metrics, unprunable_nonzero

_EXPORTS = {
    "AccuracyMetrics": "prunebench.metrics.accuracy", "evaluate": "prunebench.metrics.accuracy",
    "MacMetrics": "prunebench.metrics.flops", "dense_macs": "prunebench.metrics.flops",
    "mac_metrics": "prunebench.metrics.flops", "SizeMetrics": "prunebench.metrics.size",
    "size_metrics": "prunebench.metrics.size", "unprunable_nonzero": "prunebench.metrics.size",
}

__all__ = [
    "AccuracyMetrics", "MacMetrics", "SizeMetrics", "dense_macs", "evaluate",
    "mac_metrics", "size_metrics", "unprunable_nonzero",
]

__getattr__ = lazy_getattr(__name__, globals(), _EXPORTS)
