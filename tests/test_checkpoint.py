"""A user's own dense model: `dense: {checkpoint: PATH}`, hashed into the id, fitted, refused when it does not fit."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from prunebench.cli import main
from prunebench.spec import ExperimentSpec, build_specs
from prunebench.errors import ConfigError
from prunebench.models import create_model
from prunebench.models.checkpoint import fit_state_dict, load_checkpoint, read_state_dict
from prunebench.store.artifacts import load_tensors

TINY: dict[str, Any] = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64},
    "prune": {"strategy": "act_magnitude", "compression": 4, "score_batches": 2},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


def run(tmp: Path, name: str, config: dict[str, Any], *overrides: str) -> tuple[int, Path]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    results = tmp / name
    return main(["-q", "run", str(path), *overrides, "--results", str(results)]), results


def only_result(results: Path) -> tuple[dict[str, Any], Path]:
    (found,) = results.glob("*/result.json")
    return json.loads(found.read_text()), found.parent


def files_under(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    """One run that trains its own dense model: (results, its result, its dense model.pt)."""
    tmp = tmp_path_factory.mktemp("trained")
    code, results = run(tmp, "a", TINY)
    assert code == 0
    result, _ = only_result(results)
    return results, result, results / "dense" / result["dense_id"] / "model.pt"


def test_a_run_from_the_checkpoint_gives_the_run_that_trained_it(trained: tuple[Path, dict[str, Any], Path], tmp_path: Path) -> None:
    results_a, a, dense_file = trained
    code, results_b = run(tmp_path, "b", {**TINY, "dense": {"checkpoint": str(dense_file)}})
    assert code == 0
    b, run_b = only_result(results_b)
    run_a = results_a / a["run_id"]
    for name in ("model.pt", "mask.pt"):  # the same pruned and fine-tuned weights, exactly
        wa, wb = load_tensors(run_a / name), load_tensors(run_b / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert b["accuracy"] == a["accuracy"]  # dense accuracy measured from the file, pruned accuracy the same
    assert b["sizes"] == a["sizes"]
    digest = hashlib.sha256(dense_file.read_bytes()).hexdigest()
    assert b["spec"]["dense"]["sha256"] == digest and b["spec"]["dense"]["checkpoint"] == str(dense_file)
    assert b["run_id"] != a["run_id"] and b["dense_id"] != a["dense_id"]  # the file is part of what is run
    dense_info = json.loads((results_b / "dense" / b["dense_id"] / "dense.json").read_text())
    assert dense_info["checkpoint"]["sha256"] == digest and dense_info["train_log"] == []


def test_a_safetensors_checkpoint_gives_the_same_result(trained: tuple[Path, dict[str, Any], Path], tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    results_a, a, dense_file = trained
    path = tmp_path / "dense.safetensors"
    safetensors.save_file(load_tensors(dense_file), str(path))
    code, results = run(tmp_path, "c", {**TINY, "dense": {"checkpoint": str(path)}})
    assert code == 0
    c, run_c = only_result(results)
    assert c["accuracy"] == a["accuracy"]
    wa, wc = load_tensors(results_a / a["run_id"] / "model.pt"), load_tensors(run_c / "model.pt")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)


def test_the_id_follows_the_content_not_the_path(trained: tuple[Path, dict[str, Any], Path], tmp_path: Path) -> None:
    _, _, dense_file = trained
    copy = tmp_path / "elsewhere.pt"
    copy.write_bytes(dense_file.read_bytes())
    spec_a, _ = build_specs({**TINY, "dense": {"checkpoint": str(dense_file)}})
    spec_b, _ = build_specs({**TINY, "dense": {"checkpoint": str(copy)}})
    assert spec_a.run_id == spec_b.run_id and spec_a.dense_spec().content_hash() == spec_b.dense_spec().content_hash()
    state = load_tensors(dense_file)
    state["1.bias"] = state["1.bias"] + 1
    torch.save(state, copy)
    spec_c, _ = build_specs({**TINY, "dense": {"checkpoint": str(copy)}})
    assert spec_c.run_id != spec_a.run_id
    # no checkpoint: the digest is hashed as null (every resolved value is hashed)
    plain = ExperimentSpec(dataset="digits", model="mlp")
    assert plain.resolved()["dense"] == {"sha256": None} and plain.dense_spec().resolved()["checkpoint_sha256"] is None
    assert plain.run_id == "eb4515fe2d24ff0e"  # the id pinned in test_config
    # a stored spec validates back to the same id without reading the file again
    assert ExperimentSpec.model_validate(spec_a.model_dump(mode="json")).run_id == spec_a.run_id


def test_a_checkpoint_that_does_not_fit_is_refused_before_anything_is_written(
    trained: tuple[Path, dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, dense_file = trained
    state = load_tensors(dense_file)
    state["3.weight"] = torch.zeros(64, 256)  # the model's 3.weight is 128 x 256
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "dense": {"checkpoint": str(bad)}}))
    before = files_under(tmp_path)
    capsys.readouterr()
    assert main(["run", str(config), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "prunebench: error: dense.checkpoint: the state_dict does not fit model mlp: "
        "key 3.weight has shape [64, 256] in the checkpoint, [128, 256] in the model"
    ), err
    assert files_under(tmp_path) == before


def test_a_changed_file_is_refused_by_its_digest(
    trained: tuple[Path, dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, dense_file = trained
    copy = tmp_path / "dense.pt"
    copy.write_bytes(dense_file.read_bytes())
    config = {**TINY, "dense": {"checkpoint": str(copy), "sha256": "0" * 64}}
    code, results = run(tmp_path, "d", config)
    assert code == 2 and not results.exists()
    assert capsys.readouterr().err.startswith(f"prunebench: error: dense.sha256: {copy} is not the file")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unpickling_code_is_refused(tmp_path: Path) -> None:
    """torch.load(weights_only=True): a file that would run code on loading is refused, and runs nothing."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    with path.open("wb") as file:
        pickle.dump({"0.weight": Payload()}, file)
    with pytest.raises(ConfigError, match="^dense.checkpoint: .* is not a state_dict prunebench can read without running code"):
        read_state_dict(path)
    assert not marker.exists()


def test_bad_sources_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^dense.checkpoint: .*missing.pt is not a file"):
        build_specs({**TINY, "dense": {"checkpoint": str(tmp_path / "missing.pt")}})
    with pytest.raises(ConfigError, match="^dense.sha256 pins the content of dense.checkpoint, which is not set"):
        build_specs({**TINY, "dense": {"sha256": "a" * 64}})
    path = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="^retrain.mode 'weight-rewind' needs the dense model's own training run"):
        build_specs({**TINY, "dense": {"checkpoint": str(path)}, "retrain": {"mode": "weight-rewind"}})
    with pytest.raises(ConfigError, match="^prune.schedule 'at-init' needs the dense model's own training run"):
        build_specs({**TINY, "dense": {"checkpoint": str(path)}, "prune": {"schedule": "at-init"}})
    torch.save({"x": torch.zeros(1), "note": "hi"}, path)
    with pytest.raises(ConfigError, match="holds 'note', a str, where a state_dict has tensors"):
        read_state_dict(path)


def test_training_checkpoints_and_wrappers_are_unwrapped(tmp_path: Path) -> None:
    model = create_model("mlp", (8,), 3)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 7, "state_dict": state, "optimizer": {"lr": torch.tensor(0.1)}}, path)
    other = create_model("mlp", (8,), 3)
    load_checkpoint("mlp", other, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    with pytest.raises(ConfigError, match=r"missing key 0\.weight|missing key 1\.weight"):
        fit_state_dict("mlp", other, {"x": torch.zeros(1)})


def torchvision_resnet_keys(blocks: tuple[int, ...], bottleneck: bool) -> list[str]:
    """The state_dict keys of torchvision.models.resnet18/50, written out from its module names."""
    def bn(prefix: str) -> list[str]:
        return [f"{prefix}.{leaf}" for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["conv1.weight", *bn("bn1")]
    convs = 3 if bottleneck else 2
    for layer, count in enumerate(blocks, start=1):
        for b in range(count):
            prefix = f"layer{layer}.{b}"
            for c in range(1, convs + 1):
                keys += [f"{prefix}.conv{c}.weight", *bn(f"{prefix}.bn{c}")]
            if b == 0 and (layer > 1 or bottleneck):
                keys += [f"{prefix}.downsample.0.weight", *bn(f"{prefix}.downsample.1")]
    return [*keys, "fc.weight", "fc.bias"]


@pytest.mark.parametrize(("name", "blocks", "bottleneck", "count"), [
    ("resnet-18", (2, 2, 2, 2), False, 122), ("resnet-50", (3, 4, 6, 3), True, 320),
])
def test_torchvision_resnet_state_dicts_load(name: str, blocks: tuple[int, ...], bottleneck: bool, count: int, tmp_path: Path) -> None:
    """A state_dict under torchvision's key names (timm's ResNets use the same) loads into the native model."""
    keys = torchvision_resnet_keys(blocks, bottleneck)
    assert len(keys) == count  # torchvision's resnet18 / resnet50 state_dicts have 122 / 320 entries
    torch.manual_seed(1)
    source = create_model(name, (3, 64, 64), 1000)
    foreign = dict(zip(keys, source.state_dict().values(), strict=True))  # torchvision's names, in its order
    path = tmp_path / "torchvision.pt"
    torch.save(foreign, path)
    torch.manual_seed(2)
    target = create_model(name, (3, 64, 64), 1000)
    load_checkpoint(name, target, path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source.eval()(x), target.eval()(x))


def timm_mobilenet_v2_keys() -> list[str]:
    """The state_dict keys of timm's mobilenetv2_100, written out from its module names."""
    def bn(prefix: str) -> list[str]:
        return [f"{prefix}.{leaf}" for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["conv_stem.weight", *bn("bn1"), "blocks.0.0.conv_dw.weight", *bn("blocks.0.0.bn1"),
            "blocks.0.0.conv_pw.weight", *bn("blocks.0.0.bn2")]
    for stage, repeats in enumerate((2, 3, 4, 3, 3, 1), start=1):
        for i in range(repeats):
            p = f"blocks.{stage}.{i}"
            keys += [f"{p}.conv_pw.weight", *bn(f"{p}.bn1"), f"{p}.conv_dw.weight", *bn(f"{p}.bn2"),
                     f"{p}.conv_pwl.weight", *bn(f"{p}.bn3")]
    return [*keys, "conv_head.weight", *bn("bn2"), "classifier.weight", "classifier.bias"]


def test_timm_mobilenet_v2_state_dicts_load(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_model("mobilenet-v2", (3, 32, 32), 10)
    keys = timm_mobilenet_v2_keys()
    foreign = dict(zip(keys, source.state_dict().values(), strict=True))
    path = tmp_path / "timm.pt"
    torch.save(foreign, path)
    torch.manual_seed(2)
    target = create_model("mobilenet-v2", (3, 32, 32), 10)
    load_checkpoint("mobilenet-v2", target, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source.eval()(x), target.eval()(x))
    # torchvision's MobileNetV2 names are the native ones; a wrong shape under timm's names is named as such
    foreign["blocks.1.0.conv_pwl.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(ConfigError, match=r"key features\.2\.conv\.2\.weight has shape \[1, 1, 1, 1\].*tried: native, timm"):
        fit_state_dict("mobilenet-v2", target, foreign)
