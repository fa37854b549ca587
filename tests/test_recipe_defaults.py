"""A key left out of a given section means what leaving the whole section out means; the CLI
and the Python API fine-tune with one default recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from prunebench import api
from prunebench.spec import ExperimentSpec, TrainSpec, build_specs, read_config
from prunebench.pruning.mask import Mask

BASE = "dataset: digits\nmodel: mlp\nprune: {strategy: magnitude, compression: 4}\n"


def spec_of(tmp_path: Path, extra: str, overrides: tuple[str, ...] = ()) -> ExperimentSpec:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    return build_specs(read_config(path, overrides))[0]


def test_an_empty_finetune_section_is_the_omitted_one(tmp_path: Path) -> None:
    omitted, empty = spec_of(tmp_path, ""), spec_of(tmp_path, "finetune: {}\n")
    assert empty.finetune == omitted.finetune and empty.run_id == omitted.run_id
    assert (omitted.finetune.epochs, omitted.finetune.lr) == (2, 0.01)
    assert omitted.finetune != TrainSpec()  # not the dense-training default (10 epochs at 0.1)


def test_a_partial_finetune_section_changes_only_what_it_names(tmp_path: Path) -> None:
    one = spec_of(tmp_path, "finetune: {epochs: 1}\n").finetune
    assert (one.epochs, one.lr) == (1, 0.01)
    assert one == spec_of(tmp_path, "", ("finetune.epochs=1",)).finetune  # an override means the same
    lr = spec_of(tmp_path, "finetune: {lr: 0.05}\n").finetune
    assert (lr.epochs, lr.lr) == (2, 0.05)


def test_the_api_and_a_config_fine_tune_with_the_same_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainSpec] = []

    def record(model: Any, data: Any, spec: TrainSpec, **kwargs: Any) -> None:
        seen.append(spec)

    monkeypatch.setattr(api, "train", record)
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    data = api.DataSplits.from_tensors(train=(x[:30], y[:30]), test=(x[30:], y[30:]))
    model = torch.nn.Linear(4, 3)
    mask = Mask.ones(dict(model.named_parameters()))
    api.finetune(model, data, mask)
    api.finetune(model, data, mask, epochs=1)
    assert seen == [spec_of(tmp_path, "").finetune, spec_of(tmp_path, "finetune: {epochs: 1}\n").finetune]


def test_a_control_derived_from_a_partial_section_keeps_the_methods_recipe(tmp_path: Path) -> None:
    # controls rebuild a spec from its dump without defaults: lr 0.1 must not read back as 0.01
    from prunebench.plan.controls import CONTROLS

    method = spec_of(tmp_path, "finetune: {lr: 0.1, epochs: 10}\n")
    control = CONTROLS.get("random").derive(method)
    assert control.finetune == method.finetune and control.prune.strategy == "random"
