"""The language-model magnitude baseline is the papers' (one threshold per Linear, Wanda's
``prune_magnitude``) unless a config asks for the per-output-row variant by ``prune.scope: row``."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from lm_tiny import tiny_llama  # noqa: E402
from prunebench.pruning.layerwise import lm_prunable, prune_causal_lm  # noqa: E402
from prunebench.spec import build_specs  # noqa: E402

SPARSITY = 0.5


def wanda_prune_magnitude(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Wanda's prune_magnitude (lib/prune.py, unstructured) as written there: True = pruned."""
    metric = torch.abs(weight)
    thresh = torch.sort(metric.flatten())[0][int(weight.numel() * sparsity)]
    return metric <= thresh


def test_the_default_magnitude_is_one_threshold_per_layer() -> None:
    model = tiny_llama(64, layers=2)
    dense = {name: w.detach().clone() for name, w in lm_prunable(model).items()}
    outcome = prune_causal_lm(model, torch.zeros(0, dtype=torch.long), "magnitude", sparsity=SPARSITY)
    rows_differ = False
    for name, weight in dense.items():
        keep = outcome.mask[name]
        reference = wanda_prune_magnitude(weight, SPARSITY)
        # the reference prunes the weight at its threshold too (<=): one more than round(0.5 * numel)
        threshold = torch.sort(weight.abs().flatten())[0][int(weight.numel() * SPARSITY)]
        assert torch.equal(~keep, reference & (weight.abs() != threshold)), name
        assert int((~keep).sum()) == round(SPARSITY * weight.numel())
        rows_differ |= bool((~keep).sum(dim=1).unique().numel() > 1)  # per layer, not per row
    assert rows_differ


def test_the_row_variant_is_asked_for_by_scope() -> None:
    model = tiny_llama(64, layers=2)
    outcome = prune_causal_lm(model, torch.zeros(0, dtype=torch.long), "magnitude", sparsity=SPARSITY, scope="row")
    for name, keep in outcome.mask.items():
        assert torch.all((~keep).sum(dim=1) == round(SPARSITY * keep.shape[1])), name


def test_a_config_without_a_scope_gets_layer() -> None:
    base = {"model": "smollm2-135m", "dataset": "shakespeare", "prune": {"strategy": "magnitude"}}
    assert build_specs(base)[0].prune.scope == "layer"
    assert build_specs({**base, "prune": {"strategy": "magnitude", "scope": "row"}})[0].prune.scope == "row"
    assert build_specs({**base, "prune": {"strategy": "wanda"}})[0].prune.scope == "row"  # Wanda's own, unchanged


def test_the_published_comparison_pins_the_settings_its_figures_were_measured_with() -> None:
    """docs/llm.md's figures came from magnitude per output row and strided windows; the
    config states both, so its command still reproduces them after the defaults changed."""
    from pathlib import Path

    from prunebench.plan.sweep import load_plan

    plan = load_plan(Path(__file__).parent.parent / "configs" / "llm-comparison.yaml")
    assert len(plan.jobs) == 25  # 18 method runs, 6 random controls, the dense row
    for job in plan.jobs:
        evaluation = job.spec.evaluation
        assert (evaluation.protocol, evaluation.window, evaluation.resolved_stride, evaluation.tokens) == \
            ("sliding", 512, 512, 1024)
        if job.spec.prune.strategy == "magnitude":
            assert job.spec.prune.scope == "row"
    scopes = {job.spec.prune.strategy: job.spec.prune.scope for job in plan.jobs if job.kind != "dense"}
    assert scopes == {"magnitude": "row", "wanda": "row", "sparsegpt": "layer", "random": "global"}
