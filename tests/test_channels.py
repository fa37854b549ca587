"""Channel pruning end to end: sweep controls, exclusions, compaction and measurement."""

from pathlib import Path

import pytest
import torch

from prunebench.executors import make_executor
from prunebench.experiment.runner import run_plan
from prunebench.experiment.sweep import plan_from_mapping, with_control
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
    statuses = run_plan(plan, tmp_path, make_executor("serial", plan.settings, tmp_path), live=False)
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
        assert measured["params_total"] == measured["params_nonzero"] == masked["params_nonzero"]
        assert measured["macs_dense"] == measured["macs_effective"] == masked["macs_effective"]
        assert measured["params_total"] < masked["params_total"]
        assert measured["top1"] == pytest.approx(masked["top1"])
