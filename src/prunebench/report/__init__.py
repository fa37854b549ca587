"""Reports: curves with confidence bands, tables, paired statistics, checklist, HTML.

The report's writer (:mod:`prunebench.report.write`) is loaded when first asked for, so that
``prunebench results``, which reads :mod:`prunebench.report.results` only, does not import
matplotlib and the statistics it never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.lazy import lazy_getattr

if TYPE_CHECKING:
    from prunebench.report.write import DEFINITIONS, REPORT_FILE, write_report

__all__ = ["DEFINITIONS", "REPORT_FILE", "write_report"]


__getattr__ = lazy_getattr(__name__, globals(), {name: "prunebench.report.write" for name in __all__})
