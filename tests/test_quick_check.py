"""Quick checks: `train.max_steps_per_epoch` caps the batches of an epoch, `subset` the training examples.

Both are part of the spec (and so of the run id) when set, and leave every id as it was when not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import prunebench as pb
from prunebench.cli import main
from prunebench.spec import ExperimentSpec, TrainSpec, build_specs
from prunebench.experiment.pipeline import prepare
from prunebench.train import train

TINY = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 16},
    "prune": {"strategy": "magnitude", "compression": 4},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 16},
}


class CountSteps:
    def __init__(self) -> None:
        self.steps = 0

    hands_mask_to_optimizer = False

    def on_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def on_train_start(self) -> None:
        pass

    def on_step_end(self, step: int) -> None:
        self.steps = step


def test_max_steps_per_epoch_caps_every_epoch(synthetic: pb.DataSplits) -> None:
    model = pb.create_model("mlp", synthetic.input_shape, synthetic.num_classes)
    counter = CountSteps()
    log = train(model, synthetic, TrainSpec(epochs=3, batch_size=16, max_steps_per_epoch=4), seed=0, callbacks=[counter])
    assert counter.steps == log.steps == 12 and len(log.epochs) == 3
    full = train(model, synthetic, TrainSpec(epochs=1, batch_size=16), seed=0)
    assert full.steps == -(-synthetic.train_x.shape[0] // 16) > 4


def test_the_quick_check_keys_change_the_ids() -> None:
    plain = ExperimentSpec(dataset="digits", model="mlp")
    assert plain.run_id == "eb4515fe2d24ff0e"  # the id pinned in test_config
    capped = plain.replace(train=TrainSpec(max_steps_per_epoch=5))
    small = plain.replace(subset=100)
    assert len({plain.run_id, capped.run_id, small.run_id}) == 3
    # the dense model changes too: a smaller dense run is not the full one's checkpoint
    assert small.dense_spec().content_hash() != plain.dense_spec().content_hash() == plain.replace(
        finetune=TrainSpec(max_steps_per_epoch=1)).dense_spec().content_hash()


def test_subset_trains_on_that_many_examples() -> None:
    spec, settings = build_specs({**TINY, "subset": 50})
    data, _ = prepare(spec, settings)
    full, _ = prepare(spec.replace(subset=None), settings)
    assert data.train_x.shape[0] == 50 and data.val_x.shape == full.val_x.shape and data.test_x.shape == full.test_x.shape
    rows = {tuple(r.flatten().tolist()) for r in full.train_x}
    assert all(tuple(r.flatten().tolist()) in rows for r in data.train_x)  # drawn from the training split only


def test_a_quick_check_runs_and_records_its_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "subset": 64, "train": {**TINY["train"], "max_steps_per_epoch": 2}}))
    assert main(["-q", "run", str(config), "finetune.max_steps_per_epoch=1", "--results", str(tmp_path / "r")]) == 0
    (found,) = (tmp_path / "r").glob("*/result.json")
    result = json.loads(found.read_text())
    assert result["spec"]["subset"] == 64
    assert result["spec"]["train"]["max_steps_per_epoch"] == 2 and result["spec"]["finetune"]["max_steps_per_epoch"] == 1


def test_a_subset_larger_than_the_split_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "subset": 10**6}))
    assert main(["run", str(config), "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("prunebench: error: subset: 1000000 is more than the ")
    assert not (tmp_path / "r").exists()
