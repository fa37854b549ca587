"""The method contract, over the one registry: weight, channel and language-model methods alike.

Every registered method declares, per model kind it prunes, a form (what it scores, what it
needs, whether it trains first or reconstructs weights, the scopes it accepts), and the tests
check the declarations against what it does: a data-free method's scores do not depend on the
data (a language model's runs no forward pass), a method that does not reconstruct leaves the
weights it keeps as they were, scope global is refused where scores do not compare across
layers, and both declared kinds work.

For each structure a strategy scores and each target kind that structure accepts, the mask
keeps exactly what the target implies; pruning again from a mask only shrinks it; and scoring
leaves the model's parameters and buffers (bitwise), its train/eval modes and its ``.grad``
fields as it found them. Weight strategies run on an MLP, channel strategies on a small CNN
with BatchNorm, both on the 8x8 synthetic images. Besides the built-ins, one weight and one
channel strategy are registered by the test itself, as a user's plugin would be.

Methods that prune language models (their layer form) meet the same contract on a tiny random
Llama: exact counts in every scope they accept, exactly N of every M along the input
dimension, masks that only shrink, and nothing but the pruned Linears touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from prunebench.spec import PruneSpec, build_specs
from prunebench.errors import ConfigError
from prunebench.data import DataSplits
from prunebench.metrics import mac_metrics, size_metrics
from prunebench.models import create_model
from prunebench.pruning import Mask, ScoreInputs, prunable_parameters, register_scorer
from prunebench.pruning.channels import ChannelTarget, prune_order, channel_graph, prune_channels, register_channel_scorer, score_channels
from prunebench.pruning.channels.select import achieved as achieved_by
from prunebench.pruning.channels.select import flags_for
from prunebench.pruning.prune import keep_count, prune_model, scoring_batches
from prunebench.pruning.rounds import scores_for_selection
from prunebench.pruning.scores import CLASSIFIER, LANGUAGE_MODEL, STRATEGIES, Method, Strategy
from prunebench.pruning.selection import tie_generator
from prunebench.pruning.structures import STRUCTURES, WeightStructure, check_structure, parse_structure, structures_scoring

TARGETS = {"compression": 3.0, "speedup": 1.6, "channel_fraction": 0.3}
PLUGIN_WEIGHTS, PLUGIN_CHANNELS = "contract_squared", "contract_mean_filter"
OPTIONS = {"synflow": {"rounds": 4}, PLUGIN_WEIGHTS: {"power": 3}}  # fewer SynFlow rounds: speed only


@dataclass(frozen=True)
class PowerOptions:
    power: int = 2


def squared(inputs: ScoreInputs, options: PowerOptions) -> dict[str, torch.Tensor]:
    """|w| ** power: a user's weight strategy."""
    return {name: p.detach().abs() ** options.power for name, p in inputs.params.items()}


def mean_filter(inputs: Any, options: Any) -> list[torch.Tensor]:
    """The mean |weight| of each filter: a user's channel strategy."""
    params = dict(inputs.model.named_parameters())
    return [
        torch.zeros(g.channels).index_add_(
            0, s.owner, params[s.param].detach().abs().index_select(s.dim, s.positions).flatten(1).mean(1))
        for g in inputs.graph.groups for s in g.of_role("out")[:1]
    ]


@pytest.fixture(autouse=True)
def plugin_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own strategies, registered in a copy of the registry that the test restores."""
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    register_scorer(PLUGIN_WEIGHTS, PowerOptions)(squared)
    register_channel_scorer(PLUGIN_CHANNELS)(mean_filter)


def cases() -> list[tuple[str, str]]:
    """(strategy, structure) for every registered strategy and every structure kind it scores,
    each structure written as its class's example (so a newly registered one is covered)."""
    found = []
    for name in [*STRATEGIES.names(), PLUGIN_WEIGHTS, PLUGIN_CHANNELS]:
        if name in STRATEGIES and not STRATEGIES.get(name).prunes(CLASSIFIER):
            continue  # language models only: lm_cases, or tests/test_lm_width.py and test_lm_depth.py
        kinds = STRATEGIES.get(name).structures if name in STRATEGIES else (
            structures_scoring("channels" if name == PLUGIN_CHANNELS else "weights"))
        found += [(name, STRUCTURES.get(kind).example) for kind in kinds]
    return found


def layer_methods() -> list[str]:
    """The methods with a layer form (prune_causal_lm); the width and depth strategies, which
    choose whole units of decoder blocks or whole blocks, have their contract in
    tests/test_lm_width.py and tests/test_lm_depth.py."""
    return [n for n in STRATEGIES.names() if STRATEGIES.get(n).layer is not None]


def lm_cases() -> list[tuple[str, str, str]]:
    """(strategy, structure, scope) for every strategy that prunes language models: each scope
    it accepts unstructured, and 2:4 (where the scope plays no part) with its default scope."""
    found = []
    for name in layer_methods():
        form = STRATEGIES.get(name).form(LANGUAGE_MODEL)
        if form is not None:
            found += [(name, "unstructured", scope) for scope in form.scopes]
            found.append((name, "2:4", form.default_scope))
    return found


def test_the_cases_cover_every_built_in_strategy_and_both_kinds() -> None:
    # whole units: tests/test_lm_width.py and tests/test_lm_depth.py
    whole = {name for name in STRATEGIES.names() if STRATEGIES.get(name).unit in ("width", "depth")}
    covered = {name for name, _ in cases()} | {name for name, _, _ in lm_cases()} | whole
    assert {"magnitude", "random", "wanda", "sparsegpt", "ria", "dsnot"} <= {name for name, _, _ in lm_cases()}
    assert set(STRATEGIES.names()) <= covered
    assert {"magnitude", "synflow", "l1_filter", "slimming", "random_channel"} <= covered
    classifier_kinds = [kind for kind in STRUCTURES.names() if STRUCTURES.get(kind).scores not in ("width", "depth")]
    assert {structure for _, structure in cases()} == {STRUCTURES.get(kind).example for kind in classifier_kinds}


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(12 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def model_for(structure: str, data: DataSplits) -> nn.Module:
    torch.manual_seed(0)
    channels = parse_structure(structure).scores == "channels"
    return SmallCNN() if channels else create_model("mlp", data.input_shape, data.num_classes)


def spec_for(strategy: str, structure: str, target: str | None, **extra: Any) -> PruneSpec:
    fields = {"strategy": strategy, "structure": structure, "score_batches": 2, "batch_size": 32,
              "options": OPTIONS.get(strategy, {}), **extra}
    if target is not None:
        fields[target] = extra.get(target, TARGETS[target])
    return PruneSpec(**fields)


def target_kinds(structure: str) -> list[str | None]:
    """The targets the structure accepts; None stands for N:M's own fixed ratio."""
    return list(parse_structure(structure).target_kinds) or [None]


@pytest.mark.parametrize(("strategy", "structure"), cases())
def test_every_accepted_target_is_met_exactly(strategy: str, structure: str, synthetic: DataSplits) -> None:
    for target in target_kinds(structure):
        model = model_for(structure, synthetic)
        spec = spec_for(strategy, structure, target)
        mask = prune_model(model, synthetic, spec, seed=0)
        params = dict(model.named_parameters())
        assert all(bool((params[n][~keep] == 0).all()) for n, keep in mask.items())  # applied in place
        check_declared_reconstruction(strategy, structure, synthetic, model, mask)
        total = sum(p.numel() for p in model.parameters())
        if structure == "channel":
            check_channel_target(model, synthetic, strategy, target, mask)
            continue
        parsed = parse_structure(structure)
        assert isinstance(parsed, WeightStructure)
        check_structure(mask, parsed)
        unprunable = total - mask.total
        if target is None:  # N:M: exactly N of every M (check_structure), so exactly N/M overall
            assert mask.kept == keep_count(model, spec) == mask.total * (1 - parsed.fixed_sparsity)  # type: ignore[operator]
        elif structure == "unstructured":  # the whole-model ratio, exact up to rounding
            assert mask.kept == keep_count(model, spec)
            assert unprunable + mask.kept == round(total / TARGETS["compression"])
            check_layer_scope(strategy, structure, synthetic)
        else:  # whole groups (blocks, rows): the count of the target, in the structure's own units
            shapes = {name: keep.shape for name, keep in mask.items()}
            assert parsed.kept_units(mask) == parsed.units_to_keep(shapes, keep_count(model, spec))


def check_declared_reconstruction(strategy: str, structure: str, data: DataSplits, model: nn.Module, mask: Mask) -> None:
    """A method that does not declare reconstruction leaves every weight it keeps (and every
    parameter outside the mask) as the dense model had it; one that does moves some survivor.
    A weight method reconstructs an output row from that row's kept weights (OBS), so where
    every row is kept or pruned whole (a row structure) there is no survivor it could move."""
    form = STRATEGIES.get(strategy).form(CLASSIFIER)
    assert form is not None
    dense = dict(model_for(structure, data).named_parameters())
    after = dict(model.named_parameters())
    untouched = all(
        torch.equal(after[n], dense[n] * mask[n].to(dense[n].dtype) if n in mask else dense[n]) for n in dense
    )
    rows = [keep.reshape(keep.shape[0], -1) for keep in mask.values()]
    mixed_rows = any(bool((r.any(dim=1) & ~r.all(dim=1)).any()) for r in rows)
    if form.unit == "weights" and not mixed_rows:
        assert untouched, f"{strategy} moved a weight of a row it kept whole"
        return
    assert untouched != form.reconstructs, f"{strategy} declares reconstructs={form.reconstructs}"


def check_layer_scope(strategy: str, structure: str, data: DataSplits) -> None:
    """Scope ``layer``: the same count in total, the same fraction of every tensor (up to one entry)."""
    model = model_for(structure, data)
    spec = spec_for(strategy, structure, "compression", scope="layer")
    mask = prune_model(model, data, spec, seed=0)
    assert mask.kept == keep_count(model, spec)
    for keep in mask.values():
        assert abs(float(keep.float().mean()) - mask.kept / mask.total) <= 1 / keep.numel() + 1e-12


def check_channel_target(model: nn.Module, data: DataSplits, strategy: str, target: str | None, mask: Mask) -> None:
    """The masked model reaches the target as the metrics count it, and the selection prunes
    the fewest channels that do so: one channel fewer would not."""
    assert target is not None
    value = TARGETS[target]
    if target == "compression":
        assert size_metrics(model, prunable_parameters(model)).compression_ratio >= value
    elif target == "speedup":
        assert mac_metrics(model, data.input_shape).theoretical_speedup >= value * (1 - 1e-9)
    dense = model_for("channel", data)
    graph = channel_graph(dense, data.input_shape)
    batches = scoring_batches(data, 32, 2, 0)
    selection = prune_channels(dense, data.input_shape, strategy, ChannelTarget(target, value),  # type: ignore[arg-type]
                               batches=batches, seed=0, options=OPTIONS.get(strategy, {}))
    assert all(torch.equal(selection.mask[n], mask[n]) for n in mask)  # the pipeline selected the same
    achieved = selection.achieved
    if target == "channel_fraction":
        assert achieved.channels_pruned == round(value * graph.channels_total)
        return
    reached = achieved.compression if target == "compression" else achieved.speedup
    assert reached >= value * (1 - 1e-9)
    # the fewest channels: the pruning order's prefix one channel shorter misses the target
    scores = score_channels(strategy, dense, graph, batches, seed=0, options=OPTIONS.get(strategy, {}))
    order = prune_order(graph, scores, "global", tie_generator(0, "channels"))  # seed 0's ties, as selected
    count = sum(len(channels) for channels in selection.pruned.values())
    assert count > 0
    short = achieved_by(graph, flags_for(graph, order, count - 1))
    assert (short.compression if target == "compression" else short.speedup) < value


@pytest.mark.parametrize(("strategy", "structure"), cases())
def test_pruning_again_from_a_mask_only_shrinks_it(strategy: str, structure: str, synthetic: DataSplits) -> None:
    if not parse_structure(structure).refines_masks:  # N:M has no second, smaller mask: it is refused
        return
    model = model_for(structure, synthetic)
    first = prune_model(model, synthetic, spec_for(strategy, structure, "compression", compression=2.0), seed=0)
    second = prune_model(model, synthetic, spec_for(strategy, structure, "compression", compression=5.0),
                         seed=1, previous=first)
    assert second.kept < first.kept
    for name, keep in second.items():
        assert not bool((keep & ~first[name]).any()), name  # nothing pruned comes back


def untouched_state(model: nn.Module) -> dict[str, Any]:
    """Parameters and buffers, every module's mode, every .grad (bitwise copies)."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "modes": [m.training for m in model.modules()],
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["modes"] == after["modes"]
    for key in ("state", "grads"):
        assert before[key].keys() == after[key].keys()
        for name, value in before[key].items():
            other = after[key][name]
            assert (value is None) == (other is None), f"{key} {name}"
            if value is not None:
                assert torch.equal(value, other), f"{key} {name} changed"


@pytest.mark.parametrize(("strategy", "structure"), [c for c in cases() if c[1] in ("unstructured", "channel")])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_scoring_leaves_weights_mode_and_gradients_alone(
    strategy: str, structure: str, mode: str, synthetic: DataSplits
) -> None:
    model = model_for(structure, synthetic)
    model.train(mode == "train")
    next(iter(model.children())).train(mode != "train")  # mixed modes: a reset to either shows
    params = list(model.parameters())
    for index, p in enumerate(params):  # gradients left from elsewhere; one parameter has none
        p.grad = None if index == 1 else torch.randn_like(p)
    before = untouched_state(model)
    batches = scoring_batches(synthetic, 32, 2, 0)
    options = STRATEGIES.get(strategy).parse_options(OPTIONS.get(strategy, {}))
    if structure == "channel":
        scores = score_channels(strategy, model, channel_graph(model, synthetic.input_shape), batches,
                                seed=0, options=OPTIONS.get(strategy, {}))
        assert all(bool(torch.isfinite(s).all()) for s in scores)
    else:
        prunable = prunable_parameters(model)
        inputs = ScoreInputs(model, prunable, batches, F.cross_entropy, torch.Generator().manual_seed(0))
        keep = math.ceil(sum(p.numel() for p in prunable.values()) / 3)
        scores = scores_for_selection(STRATEGIES.get(strategy), inputs, options, keep)  # every round
        assert set(scores) == set(prunable)
    assert_same(before, untouched_state(model))


def overwrite_everything(inputs: Any, keep: Any, options: Any) -> None:
    """An update that writes every entry, pruned ones too: only the survivors may keep the write."""
    for p in inputs.model.parameters():
        p.add_(1.0)


@pytest.mark.parametrize("structure", ["unstructured", "channel"])
def test_an_update_after_selection_moves_the_survivors_only(structure: str, synthetic: DataSplits) -> None:
    name = f"contract_update_{structure}"
    if structure == "channel":
        register_channel_scorer(name, update=overwrite_everything)(mean_filter)
    else:
        register_scorer(name, PowerOptions, update=overwrite_everything)(squared)
    dense = model_for(structure, synthetic)
    model = model_for(structure, synthetic)
    target = "speedup" if structure == "channel" else "compression"
    mask = prune_model(model, synthetic, spec_for(name, structure, target), seed=0)
    before, after = dict(dense.named_parameters()), dict(model.named_parameters())
    for pname, keep in mask.items():
        assert bool((after[pname][~keep] == 0).all())  # pruned entries stay exactly zero
        assert torch.equal(after[pname][keep], before[pname][keep] + 1.0)  # the update reached the survivors
    assert mask.kept < mask.total


def tiny_llama() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=97, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config)


@pytest.mark.parametrize(("strategy", "structure", "scope"), lm_cases())
def test_language_model_pruning_meets_its_target_exactly_and_touches_nothing_else(
    strategy: str, structure: str, scope: str
) -> None:
    from prunebench.pruning.layerwise import lm_prunable, prune_causal_lm

    model = tiny_llama()
    model.train()
    model.model.layers[0].train(False)  # mixed modes: a reset to either shows
    calibration = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(0))
    prunable = set(lm_prunable(model))
    before = untouched_state(model)
    rng = torch.get_rng_state()
    sparsity = 0.5 if structure == "unstructured" else None
    outcome = prune_causal_lm(model, calibration, strategy, sparsity=sparsity, structure=structure, scope=scope, seed=0)
    assert torch.equal(rng, torch.get_rng_state())
    after = untouched_state(model)
    assert before["modes"] == after["modes"]
    for name, value in before["state"].items():  # embeddings, norms and the LM head: bitwise the same
        if name not in prunable:
            assert torch.equal(value, after["state"][name]), name
    assert set(outcome.mask) == prunable
    params = dict(model.named_parameters())
    for name, keep in outcome.mask.items():
        assert bool((params[name][~keep] == 0).all()), name  # pruned weights exactly zero
        pruned = (~keep).sum(dim=1)
        if structure == "2:4":
            assert torch.all(keep.reshape(keep.shape[0], -1, 4).sum(dim=2) == 2), name  # along the inputs
        elif scope == "row":
            assert torch.all(pruned == round(0.5 * keep.shape[1])), name
        elif scope == "layer":
            assert int(pruned.sum()) == round(0.5 * keep.numel()), name
    if structure == "2:4":
        check_structure(outcome.mask, parse_structure("2:4"))
        return
    total = sum(k.numel() for k in outcome.mask.values())
    assert outcome.mask.total - outcome.mask.kept == round(0.5 * total)
    # pruning again from the mask only shrinks it, to the new target exactly
    again = prune_causal_lm(model, calibration, strategy, sparsity=0.75, scope=scope, seed=1, previous=outcome.mask)
    assert again.mask.is_subset_of(outcome.mask)
    assert again.mask.total - again.mask.kept == round(0.75 * total)


@pytest.mark.parametrize("strategy", ["wanda", "sparsegpt"])
def test_a_classifier_spec_naming_a_language_model_strategy_gets_one_line(strategy: str) -> None:
    with pytest.raises(ConfigError, match=f"prune.strategy '{strategy}' prunes language models only") as error:
        build_specs({"dataset": "synthetic", "model": "mlp", "prune": {"strategy": strategy}})
    assert "\n" not in str(error.value)


# --- the declarations ------------------------------------------------------------------------


def test_every_method_declares_a_form_for_each_kind_it_prunes() -> None:
    for name in STRATEGIES.names():
        method = STRATEGIES.get(name)
        assert isinstance(method, Method) and method.name == name
        assert method.kinds and method.description, name
        for kind in method.kinds:
            form = method.form(kind)
            assert form is not None and form.kind == kind and form.scopes and form.structures, name
            assert "global" not in form.scopes or method.comparable, name  # global only for comparable scores
            if kind == CLASSIFIER:
                assert form.unit == ("weights" if isinstance(method, Strategy) else "channels"), name
                assert form.needs in ("nothing", "batches") and form.default_scope == ("global" if method.comparable else "layer")
                assert ("channel" in form.structures) == (form.unit == "channels"), name
            elif form.unit == "width":  # whole units of decoder blocks (tests/test_lm_width.py)
                assert set(form.structures) == {"mlp_channels", "attention_heads", "width"}, name
                assert method.layer is None and form.default_scope == "layer", name
            elif form.unit == "depth":  # whole decoder blocks, compared model-wide (tests/test_lm_depth.py)
                assert form.structures == ("depth",) and method.layer is None and form.scopes == ("global",), name
            else:
                assert form.unit == "linear" and set(form.structures) == {"unstructured", "nm"}, name
                assert (form.needs == "nothing") == (method.layer is not None and method.layer.statistics == "none")
        assert [kind for kind in (CLASSIFIER, LANGUAGE_MODEL) if method.prunes(kind)] == list(method.kinds)


def test_magnitude_and_random_are_one_method_each_for_both_model_kinds(synthetic: DataSplits) -> None:
    """One registration each, and that one object prunes a classifier and a language model."""
    from prunebench.pruning.layerwise import _lm_pruner, prune_causal_lm
    from prunebench.pruning.scores import WEIGHT_STRATEGIES

    for name in ("magnitude", "random"):
        method = STRATEGIES.get(name)
        assert method.kinds == (CLASSIFIER, LANGUAGE_MODEL)
        assert [n for n in STRATEGIES.names() if STRATEGIES.get(n).layer is method.layer] == [name]
        assert WEIGHT_STRATEGIES.get(name) is method and _lm_pruner(name)[0] is method
        model = model_for("unstructured", synthetic)
        mask = prune_model(model, synthetic, spec_for(name, "unstructured", "compression"), seed=0)
        assert mask.kept == keep_count(model, spec_for(name, "unstructured", "compression"))
        lm = tiny_llama()
        outcome = prune_causal_lm(lm, torch.zeros(0, dtype=torch.long), name, sparsity=0.5, seed=0)
        assert outcome.mask.total - outcome.mask.kept == round(0.5 * outcome.mask.total)


def data_free_cases() -> list[tuple[str, str]]:
    return [(n, s) for n, s in cases() if s in ("unstructured", "channel") and n in STRATEGIES
            and STRATEGIES.get(n).needs == "nothing"]


def test_the_data_free_cases_cover_both_classifier_units() -> None:
    assert {"magnitude", "random", "synflow", "l1_filter", "random_channel"} <= {n for n, _ in data_free_cases()}


@pytest.mark.parametrize(("strategy", "structure"), data_free_cases())
def test_a_data_free_method_does_not_read_the_data(strategy: str, structure: str, synthetic: DataSplits) -> None:
    """Its scores are the same for the training batches and for noise of the same shape."""
    model = model_for(structure, synthetic)
    real = scoring_batches(synthetic, 32, 2, 0)
    noise_source = torch.Generator().manual_seed(1)
    noise = [(100 * torch.randn(x.shape, generator=noise_source), torch.randint(0, 10, y.shape, generator=noise_source))
             for x, y in real]
    if structure == "channel":
        graph = channel_graph(model, synthetic.input_shape)
        first, second = (score_channels(strategy, model, graph, b, seed=0, options=OPTIONS.get(strategy, {}))
                         for b in (real, noise))
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
        return
    method = STRATEGIES.get(strategy)
    assert isinstance(method, Strategy)
    options = method.parse_options(OPTIONS.get(strategy, {}))
    prunable = prunable_parameters(model)
    first, second = (method(ScoreInputs(model, prunable, b, F.cross_entropy, torch.Generator().manual_seed(0)), options)
                     for b in (real, noise))
    assert all(torch.equal(first[n], second[n]) for n in prunable)


@pytest.mark.parametrize("strategy", layer_methods())
def test_a_language_model_method_reads_calibration_data_exactly_when_it_declares_a_need(strategy: str) -> None:
    """Data-free: no forward pass at all, and the same mask whatever the calibration tokens;
    calibration statistics: the decoder blocks are run."""
    from prunebench.pruning.layerwise import decoder_blocks, prune_causal_lm

    form = STRATEGIES.get(strategy).form(LANGUAGE_MODEL)
    assert form is not None
    masks = []
    for seed in (0, 1):
        model = tiny_llama()
        calls: list[int] = []
        handles = [b.register_forward_pre_hook(lambda *_, seen=calls: seen.append(1)) for b in decoder_blocks(model)]
        calibration = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(seed))
        masks.append(prune_causal_lm(model, calibration, strategy, sparsity=0.5, seed=0).mask)
        for handle in handles:
            handle.remove()
        assert (len(calls) == 0) == (form.needs == "nothing"), strategy
    if form.needs == "nothing":
        assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])


@pytest.mark.parametrize("strategy", layer_methods())
def test_a_language_model_method_moves_the_weights_it_keeps_exactly_when_it_declares_reconstruction(strategy: str) -> None:
    from prunebench.pruning.layerwise import lm_prunable, prune_causal_lm

    form = STRATEGIES.get(strategy).form(LANGUAGE_MODEL)
    assert form is not None
    model = tiny_llama()
    dense = {n: w.detach().clone() for n, w in lm_prunable(model).items()}
    calibration = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(0))
    mask = prune_causal_lm(model, calibration, strategy, sparsity=0.5, seed=0).mask
    after = lm_prunable(model)
    untouched = all(torch.equal(after[n][k], dense[n][k]) for n, k in mask.items())
    assert untouched != form.reconstructs


def layer_local() -> list[str]:
    return [n for n in STRATEGIES.names() if not STRATEGIES.get(n).comparable]


def test_obs_and_the_language_model_saliencies_are_declared_layer_local() -> None:
    assert {"obs", "wanda", "sparsegpt", "ria", "dsnot"} <= set(layer_local())
    assert "magnitude" not in layer_local() and "obd" not in layer_local()


@pytest.mark.parametrize("strategy", layer_local())
def test_global_scope_is_refused_where_scores_do_not_compare_across_layers(strategy: str, synthetic: DataSplits) -> None:
    from prunebench.pruning.layerwise import prune_causal_lm

    method = STRATEGIES.get(strategy)
    if method.prunes(CLASSIFIER):
        with pytest.raises(ValueError, match=rf"prune.scope 'global': strategy '{strategy}' .*do not compare across layers"):
            PruneSpec(strategy=strategy, scope="global")
        assert PruneSpec(strategy=strategy).scope == "layer"  # left out: its own default
        with pytest.raises(ConfigError, match=r"^prune.scope 'global'") as error:
            build_specs({"dataset": "synthetic", "model": "mlp", "prune": {"strategy": strategy, "scope": "global"}})
        assert "\n" not in str(error.value)
        unchecked = PruneSpec(strategy=strategy).model_copy(update={"scope": "global"})  # the library path
        with pytest.raises(ConfigError, match=r"^prune.scope 'global'"):
            prune_model(model_for("unstructured", synthetic), synthetic, unchecked, seed=0)
    if method.prunes(LANGUAGE_MODEL):
        lm = {"model": "smollm2-135m", "dataset": "shakespeare", "prune": {"strategy": strategy, "scope": "global"}}
        with pytest.raises(ConfigError, match=r"^prune.scope 'global'") as error:
            build_specs(lm)
        assert "\n" not in str(error.value)
        if method.layer is not None:  # the width and depth strategies do not go through prune_causal_lm
            with pytest.raises(ConfigError, match=r"^prune.scope 'global'"):
                prune_causal_lm(tiny_llama(), torch.zeros(1, 4, dtype=torch.long), strategy, sparsity=0.5, scope="global")


def rescaled(model: nn.Sequential, factor: float) -> nn.Sequential:
    """Layer 1 (weight and bias) times ``factor``, layer 2 divided by it: ReLU is positively
    homogeneous, so the network computes the same function (bit for bit for a power of two)."""
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        other[1].weight.mul_(factor)
        other[1].bias.mul_(factor)
        other[3].weight.div_(factor)
    return other


def test_a_rescaling_that_leaves_the_output_unchanged_cannot_change_the_obs_mask(synthetic: DataSplits) -> None:
    """Layer 1 x4, layer 2 /4: the same network. OBS's saliencies of layer 1 grow 16-fold and
    layer 2's stay, so a global ranking moves entries between the layers; OBS refuses global and
    prunes per layer, where the mask is the same. OBD's saliencies are loss changes, the same
    under the rescaling, so its global mask is the same too."""
    from prunebench.pruning import PrunablePolicy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    other = rescaled(model, 4.0)
    x = synthetic.train_x[:64]
    assert torch.equal(model(x), other(x))
    fields = {"compression": 3.0, "score_batches": 2, "batch_size": 32, "prunable": PrunablePolicy(exclude_classifier=False)}

    # what global selection would do: rank the two layers' OBS scores together
    obs = STRATEGIES.get("obs")
    assert isinstance(obs, Strategy)
    batches = scoring_batches(synthetic, 32, 2, 0)

    def global_keep(m: nn.Module) -> torch.Tensor:
        params = prunable_parameters(m, PrunablePolicy(exclude_classifier=False))
        scores = obs(ScoreInputs(m, params, batches, F.cross_entropy, torch.Generator().manual_seed(0)))
        flat = torch.cat([s.flatten() for s in scores.values()])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.topk(flat.numel() // 3).indices] = True
        return keep

    moved = int((global_keep(model) != global_keep(other)).sum())
    assert moved > 0  # the problem the refusal prevents

    with pytest.raises(ValueError, match="prune.scope 'global'"):
        PruneSpec(strategy="obs", scope="global", **fields)
    spec = PruneSpec(strategy="obs", **fields)
    assert spec.scope == "layer"
    first, second = (prune_model(m, synthetic, spec, seed=0) for m in (model, other))
    assert all(torch.equal(first[n], second[n]) for n in first)
    assert torch.allclose(model(x), other(x), rtol=1e-5, atol=1e-6)  # the compensated networks agree too

    obd = PruneSpec(strategy="obd", **fields)
    assert obd.scope == "global"
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    first, second = (prune_model(m, synthetic, obd, seed=0) for m in (plain, rescaled(plain, 4.0)))
    assert all(torch.equal(first[n], second[n]) for n in first)
