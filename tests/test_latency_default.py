"""latency: true times the eager and the BatchNorm-folded form by default, and the report's
measured speedup is best form against best form."""

from __future__ import annotations

from types import SimpleNamespace

from prunebench.spec import RunSettings
from prunebench.report.aggregate import headline_latency


def test_the_default_forms_are_eager_and_bn_folded() -> None:
    assert RunSettings().latency_forms == ("eager", "bn-folded")
    assert RunSettings(latency_forms=["eager"]).latency_forms == ("eager",)  # still opt-out


def test_the_headline_is_best_against_best() -> None:
    eager_only = SimpleNamespace(best=None, measured_speedup=1.18, pruned_ms=10.0)
    assert headline_latency(eager_only) == (1.18, 10.0)
    both = SimpleNamespace(best=SimpleNamespace(measured_speedup=1.4, pruned_ms=7.0), measured_speedup=1.18, pruned_ms=10.0)
    assert headline_latency(both) == (1.4, 7.0)
