"""``1e-3``, ``5e-4`` and ``1E-3`` are numbers, as in YAML 1.2 and in nearly every pruning
config of the field (PyYAML's YAML 1.1 leaves them strings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prunebench.spec import build_specs, read_config
from prunebench.config_file import load_yaml

FORMS = {"1e-3": 0.001, "5e-4": 0.0005, "1E-3": 0.001}
PLAIN = "dataset: digits\nmodel: mlp\nprune: {strategy: magnitude, compression: 4}\n"


@pytest.mark.parametrize("text,value", FORMS.items())
def test_a_config_file_reads_the_form_as_a_number(tmp_path: Path, text: str, value: float) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PLAIN + f"finetune: {{lr: {text}, weight_decay: {text}}}\n")
    data = read_config(path)
    assert data["finetune"] == {"lr": value, "weight_decay": value}
    spec, _ = build_specs(data)
    assert spec.finetune.lr == value


@pytest.mark.parametrize("text,value", FORMS.items())
def test_an_override_reads_the_form_as_a_number(tmp_path: Path, text: str, value: float) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PLAIN)
    data = read_config(path, [f"finetune.lr={text}", f"train.weight_decay=[{text}]"])
    assert data["finetune"]["lr"] == value and data["train"]["weight_decay"] == [value]


def test_the_other_forms_keep_their_meaning() -> None:
    assert load_yaml("1.0e-3") == 0.001 and load_yaml("-2.5e+3") == -2500.0 and load_yaml(".5e-3") == 0.0005
    assert load_yaml("12") == 12 and isinstance(load_yaml("12"), int)
    assert load_yaml("e5") == "e5" and load_yaml("1e") == "1e" and load_yaml("1e-3x") == "1e-3x"
