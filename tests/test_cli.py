"""The command line: runs, lists, and refuses bad input with one line, exit 2, nothing written."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main

TINY = {
    "dataset": "synthetic",
    "model": "mlp",
    "seed": 0,
    "train": {"epochs": 2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001, "batch_size": 64},
    "prune": {"strategy": "magnitude", "scope": "global", "compression": 8},
    "finetune": {"epochs": 1, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 64},
}

REQUIRED_KEYS = {
    "schema_version", "run_id", "spec", "target", "sizes", "macs", "accuracy", "retraining", "timings", "provenance",
}


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_writes_one_directory_per_run_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    config = write_config(tmp_path, TINY)
    assert main(["-q", "run", str(config), "prune.compression=4", "--results", str(results)]) == 0
    run_dirs = [p for p in results.iterdir() if (p / "result.json").is_file()]
    assert len(run_dirs) == 1
    result = json.loads((run_dirs[0] / "result.json").read_text())
    assert REQUIRED_KEYS <= set(result)
    assert result["run_id"] == run_dirs[0].name
    assert result["spec"]["prune"]["compression"] == 4
    assert result["sizes"]["compression_ratio"] == pytest.approx(4, rel=1e-4)
    assert result["target"] == {"kind": "compression", "value": 4.0}
    assert {"torch", "prunebench", "device", "threads"} <= set(result["provenance"])
    assert result["run_id"] in capsys.readouterr().out


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "strategies"]) == 0
    out = capsys.readouterr().out
    for name in ("random", "magnitude", "grad_magnitude", "act_magnitude", "snip", "l1_filter", "fpgm"):
        assert name in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lenet-300-100" in out and "fashion-mnist" in out


BAD_INPUTS = {
    "unknown key": ({"prune": {**TINY["prune"], "ratio": 3}}, [], "prune.ratio: unknown key"),
    "wrong type": ({"train": {**TINY["train"], "epochs": "many"}}, [], "train.epochs: Input should be a valid integer"),
    "unknown strategy": ({}, ["prune.strategy=magnitudes"], "did you mean magnitude"),
    "unknown model": ({"model": "lenet-5-caffe"}, [], "unknown model 'lenet-5-caffe'; did you mean lenet-5"),
    "unknown dataset": ({"dataset": "fashion"}, [], "unknown dataset 'fashion'; did you mean fashion-mnist"),
    "compression <= 1": ({}, ["prune.compression=0.5"], "prune.compression: Input should be greater than 1"),
    "unreachable compression": ({}, ["prune.compression=1000"], "prune.compression 1000 cannot be reached"),
    "missing data": ({"dataset": "mnist", "download": False}, ["data_dir=MISSING"], "mnist data not found"),
    "bad override": ({}, ["prune.compression"], "must look like key=value"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    change, overrides, message = BAD_INPUTS[case]
    overrides = [o.replace("MISSING", str(tmp_path / "nowhere")) for o in overrides]
    config = write_config(tmp_path, {**TINY, **change})
    results = tmp_path / "results"
    assert main(["run", str(config), *overrides, "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and err.startswith("prunebench: error:")
    assert not results.exists()


def test_corrupt_data_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"not the official file")
    config = write_config(tmp_path, {**TINY, "dataset": "fashion-mnist", "data_dir": str(tmp_path / "data")})
    assert main(["run", str(config), "--results", str(tmp_path / "results")]) == 2
    assert "is corrupt" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_missing_config_file_and_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    assert main(["run", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_console_script_exit_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, {**TINY, "model": "nope"})
    proc = subprocess.run(
        [sys.executable, "-m", "prunebench.cli", "run", str(config), "--results", str(tmp_path / "r")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("prunebench: error: model: unknown model 'nope'")
    assert "Traceback" not in proc.stderr
