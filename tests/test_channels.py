"""Channel pruning end to end: sweep controls, exclusions, compaction and measurement."""

from pathlib import Path

import pytest
import torch

from prunebench.executors import make_executor
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping, with_control
from prunebench.pruning.structures import random_control

pytest.importorskip("torch_pruning")

CHANNEL_SWEEP = {
    "dataset": "synthetic",
    "model": "conv-2",
    "threads": 1,
    "train": {"epochs": 1, "batch_size": 64},
    "finetune": {"epochs": 1, "batch_size": 64},
    "prune": {"structure": "channel", "strategy": "l1_filter"},
    "sweep": {"prune.strategy": ["l1_filter", "fpgm"], "prune.speedup": [1.5]},
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_each_structure_names_its_random_control() -> None:
    assert random_control("channel") == "random_channel"
    assert {random_control(s) for s in ("unstructured", "2:4", "block:4x4")} == {"random"}


def test_channel_sweep_with_baselines_runs_end_to_end(tmp_path: Path) -> None:
    plan = plan_from_mapping(CHANNEL_SWEEP)
    controls = [j for j in plan.pruned_jobs if j.role == "control"]
    assert [(j.spec.prune.strategy, j.spec.prune.structure, j.spec.prune.speedup) for j in controls] == [
        ("random_channel", "channel", 1.5)
    ]
    assert {j.role for j in plan.pruned_jobs if j.spec.prune.strategy != "random_channel"} == {"method"}
    statuses = run_plan(plan, tmp_path, make_executor("serial"), live=False)
    assert statuses == {"completed": len(plan.jobs)}  # dense + two methods + the random control
    assert len(plan.jobs) == 4


def test_control_spec_is_revalidated_not_copied() -> None:
    plan = plan_from_mapping({**CHANNEL_SWEEP, "sweep": {"prune.strategy": ["l1_filter"], "prune.speedup": [1.5]}})
    method = plan.pruned_jobs[0].spec
    control = with_control(method)
    assert control.prune.strategy == "random_channel" and control.prune.scope == "global"
    assert type(control).model_validate(control.model_dump(mode="json", exclude_defaults=True)).run_id == control.run_id


def test_unstructured_and_nm_sweeps_get_random() -> None:
    base = {k: v for k, v in CHANNEL_SWEEP.items() if k not in ("prune", "sweep")}
    for prune in ({"compression": 4}, {"structure": "2:4", "prunable": {"exclude": ["conv1.*"]}}):
        plan = plan_from_mapping({**base, "model": "mlp", "prune": prune, "sweep": {"seed": [0]}})
        assert [j.spec.prune.strategy for j in plan.pruned_jobs if j.role == "control"] == ["random"]


def _digits_like():
    from prunebench.data import load_dataset

    return load_dataset("synthetic", data_dir=None, val_fraction=0.1, seed=0, device="cpu", download=False)


def test_prunable_exclude_keeps_the_layers_channels_in_a_channel_run() -> None:
    import prunebench as pb
    from prunebench.models import create_model
    from prunebench.pruning import PrunablePolicy

    data = _digits_like()
    for exclude, whole in (((), False), (("features.0.*",), True)):
        torch.manual_seed(0)
        model = create_model("conv-2", data.input_shape, data.num_classes)
        mask = pb.prune(model, data, "l1_filter", structure="channel", channel_fraction=0.5,
                        prunable=PrunablePolicy(exclude=exclude))
        first = mask["features.0.weight"] if "features.0.weight" in mask else None
        assert (first is None or bool(first.all())) is whole
        assert not mask["features.2.weight"].all()  # the other layers are still pruned


def test_compact_refuses_a_mask_that_is_not_a_channel_mask() -> None:
    import prunebench as pb
    from prunebench.errors import ConfigError
    from prunebench.models import create_model
    from prunebench.pruning import PrunablePolicy
    from prunebench.pruning.compact import compact

    data = _digits_like()
    for structure, options in (("unstructured", {"compression": 4}), ("2:4", {})):
        model = create_model("conv-2", data.input_shape, data.num_classes)
        mask = pb.prune(model, data, "magnitude", structure=structure,
                        prunable=PrunablePolicy(exclude=("features.0.*",)), **options)
        with pytest.raises(ConfigError, match="compact needs a channel mask"):
            compact(model, mask, data.input_shape)


def test_measure_works_on_a_compacted_model() -> None:
    import prunebench as pb
    from prunebench.models import create_model
    from prunebench.pruning import Mask
    from prunebench.pruning.compact import compact

    data = _digits_like()
    torch.manual_seed(0)
    model = create_model("conv-2", data.input_shape, data.num_classes)
    mask = pb.prune(model, data, "l1_filter", structure="channel", channel_fraction=0.5)
    masked = pb.measure(model, data, mask)
    small = compact(model, mask, data.input_shape).eval()
    for measured in (pb.measure(small, data), pb.measure(small, data, Mask.ones(dict(small.named_parameters())))):
        assert measured.sizes.params_total == measured.sizes.params_nonzero == masked.sizes.params_nonzero
        assert measured.macs.dense == measured.macs.effective == masked.macs.effective
        assert measured.sizes.params_total < masked.sizes.params_total
        assert measured.top1 == pytest.approx(masked.top1)


class NormsAndGroups(torch.nn.Module):
    """GroupNorm (blocks of 2, and one per channel), a grouped convolution, a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.conv1, self.gn1 = nn.Conv2d(1, 8, 3, padding=1), nn.GroupNorm(4, 8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8)
        self.conv3, self.gn3 = nn.Conv2d(8, 12, 3, padding=1, groups=4), nn.GroupNorm(12, 12)
        self.conv4, self.ln4 = nn.Conv2d(12, 6, 1), nn.GroupNorm(1, 6)  # a LayerNorm over channels
        self.fc1, self.ln = nn.Linear(6 * 4 * 4, 16), nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        x = f.relu(self.gn1(self.conv1(x)))
        x = f.relu(self.bn2(self.conv2(x)))
        x = f.max_pool2d(f.relu(self.gn3(self.conv3(x))), 2)
        x = f.relu(self.ln4(self.conv4(x)))
        return self.fc2(f.relu(self.ln(self.fc1(x.flatten(1)))))


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Norm scales and shifts away from 1 and 0, BN statistics away from their defaults."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator))
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def test_groupnorm_layernorm_and_grouped_conv_compact_to_the_masked_model() -> None:
    from prunebench.metrics import mac_metrics, size_metrics
    from prunebench.pruning.channels import ChannelTarget, channel_graph, prune_channels
    from prunebench.pruning.compact import compact

    shape = (1, 8, 8)
    torch.manual_seed(0)
    model = _perturbed(NormsAndGroups())
    graph = channel_graph(model, shape)
    units = {g.root: (g.channels, g.width) for g in graph.groups}
    # conv1: GN blocks {0,1}..{6,7} tied across conv2's two groups -> 2 units; conv2: its two
    # groups, read by conv3 in 4 groups of 2 -> 2 units; conv3: 4 groups of 3 -> 3 units; conv4
    # and fc1: one norm over all their channels -> 1 unit, nothing prunable
    assert units == {"conv1": (2, 8), "conv2": (2, 8), "conv3": (3, 12), "conv4": (1, 6), "fc1": (1, 16)}
    x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        selection = prune_channels(model, shape, "random_channel", ChannelTarget("channel_fraction", 0.3), seed=seed)
        masked = _perturbed(NormsAndGroups())
        masked.load_state_dict(model.state_dict())
        selection.mask.apply(masked)
        small = compact(model, selection.mask, shape).eval()
        assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            torch.testing.assert_close(small(x), masked(x), rtol=1e-5, atol=1e-5)
        sizes = size_metrics(masked, dict(masked.named_parameters()))
        assert sum(p.numel() for p in small.parameters()) == sizes.params_nonzero
        assert mac_metrics(small, shape).dense_total == mac_metrics(masked, shape).effective_total
        assert small.gn1.num_channels // small.gn1.num_groups == 2 and small.conv3.groups == 4
        # the scratch baselines' start, at full width, computes what the fresh compact model does
        from prunebench.pruning.compact import scratch_model, scratch_start

        start = NormsAndGroups().eval()
        start.load_state_dict(scratch_start(model, selection.mask, shape, seed=7))
        with torch.no_grad():
            torch.testing.assert_close(start(x), scratch_model(small, 7).eval()(x), rtol=1e-5, atol=1e-5)


def _bn_l1(model: torch.nn.Module) -> float:
    return sum(float(m.weight.abs().sum()) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.slow  # trains with the sparsity penalty, then prunes and fine-tunes
def test_slimming_runs_its_sparsity_training_phase(tmp_path: Path) -> None:
    from prunebench.spec import ExperimentSpec, RunSettings, TrainSpec
    from prunebench.experiment import run_experiment
    from prunebench.experiment.pipeline import dense_checkpoint, prepare, sparsity_training

    recipe = TrainSpec(epochs=1, lr=0.05, batch_size=64)

    def spec(**options: object) -> ExperimentSpec:
        return ExperimentSpec(dataset="synthetic", model="resnet-20", train=recipe, finetune=recipe,
                              prune={"structure": "channel", "strategy": "slimming", "channel_fraction": 0.2,
                                     "options": options})

    after = {}
    for name, options in (("l1", {"sparsity": 0.05}), ("plain", {"sparsity": 0.0}), ("off", {"epochs": 0})):
        data, model = prepare(spec(**options), RunSettings())
        dense_checkpoint(spec(**options), data, model, tmp_path)  # the same dense weights each time
        dense_l1 = _bn_l1(model)
        ran = sparsity_training(spec(**options), data, model)
        assert (ran is None) == (name == "off")
        after[name] = _bn_l1(model)
    assert after["off"] == dense_l1
    assert after["l1"] < after["plain"] - 0.1 * dense_l1  # the penalty, not the training, shrinks gamma
    result = run_experiment(spec(), RunSettings(), tmp_path)  # the default: lambda 1e-4, finetune's epochs
    phase = result.retraining.sparsity_training
    assert phase is not None and phase["epochs"] == 1 and phase["options"]["sparsity"] == 1e-4


def test_slimming_options_are_validated_and_documented() -> None:
    from prunebench.spec import PruneSpec
    from prunebench.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="prune.options.sparsity"):
        PruneSpec(structure="channel", strategy="slimming", options={"sparsity": -1})
    with pytest.raises((ConfigError, ValueError), match="prune.options.gamma: unknown option of strategy slimming"):
        PruneSpec(structure="channel", strategy="slimming", options={"gamma": 1})
    with pytest.raises((ConfigError, ValueError), match="unknown option of strategy l1_filter"):
        PruneSpec(structure="channel", strategy="l1_filter", options={"sparsity": 1e-4})
    docs = (Path(__file__).parents[1] / "docs" / "structured.md").read_text()
    assert "prune.options.sparsity" in docs and "prune.options.epochs" in docs


def test_channel_scratch_run_starts_from_the_compact_models_initialization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prunebench.spec import ExperimentSpec, RunSettings, TrainSpec
    from prunebench.experiment import retrain, run_experiment
    from prunebench.pruning.compact import compact, scratch_model

    recipe = TrainSpec(epochs=1, lr=0.05, batch_size=64)
    spec = ExperimentSpec(dataset="synthetic", model="resnet-20", train=recipe, finetune=recipe,
                          prune={"structure": "channel", "strategy": "l1_filter", "channel_fraction": 0.3},
                          retrain={"mode": "scratch-e"})
    started = {}
    real = retrain.train_masked

    def spy(model, data, recipe, mask, **kwargs):  # the weights the scratch run trains from
        started["model"] = __import__("copy").deepcopy(model)
        started["mask"], started["shape"] = mask, data.input_shape
        return real(model, data, recipe, mask, **kwargs)

    monkeypatch.setattr(retrain, "train_masked", spy)
    run_experiment(spec, RunSettings(threads=1), tmp_path)
    model, mask, shape = started["model"], started["mask"], started["shape"]
    for name, keep in mask.items():  # pruned entries start at zero
        assert torch.count_nonzero(dict(model.named_parameters())[name].detach()[~keep]) == 0
    ours = compact(model, mask, shape).state_dict()
    expected = scratch_model(compact(model, mask, shape), spec.seed + retrain.REINIT_SEED_OFFSET).state_dict()
    assert ours.keys() == expected.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], expected[key], rtol=0, atol=0, msg=key)


def test_pruning_does_not_import_the_config_schema() -> None:
    import ast

    root = Path(__file__).parents[1] / "src" / "prunebench" / "pruning"
    paths = sorted(root.rglob("*.py"))
    assert len(paths) > 10, root  # a wrong folder would check nothing
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n in ("prunebench.config", "prunebench.spec") or n.startswith(("prunebench.config.", "prunebench.spec.")) for n in names), path
