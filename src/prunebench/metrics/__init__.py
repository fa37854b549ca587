"""Honest metrics: sizes, MACs, accuracy. Each has one definition (docs/metrics.md)."""

from prunebench.metrics.accuracy import AccuracyMetrics, evaluate
from prunebench.metrics.flops import MacMetrics, dense_macs, mac_metrics
from prunebench.metrics.size import SizeMetrics, size_metrics, unprunable_nonzero

__all__ = [
    "AccuracyMetrics", "MacMetrics", "SizeMetrics", "dense_macs", "evaluate",
    "mac_metrics", "size_metrics", "unprunable_nonzero",
]
