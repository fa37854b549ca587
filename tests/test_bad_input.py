"""Ordinary mistakes are refused before anything is written: one line naming the field, exit 2.

Each case runs the CLI in-process on a tiny config and compares every file under the test's
folder before and after: a refused run must leave no database, no run folder, no checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from pydantic import BaseModel

from prunebench.cli import main
from prunebench.spec import ExperimentSpec, RunSettings, build_specs
from prunebench.errors import ConfigError
from prunebench.plan.sweep import plan_from_mapping

TINY: dict[str, Any] = {
    "dataset": "synthetic",
    "model": "mlp",
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.05, "batch_size": 64},
    "prune": {"strategy": "magnitude", "compression": 4},
    "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


@dataclass(frozen=True)
class Case:
    overrides: tuple[str, ...] = ()
    key: str = ""  # the key the one-line error must name
    change: dict[str, Any] = field(default_factory=dict)  # merged into TINY's sections
    flags: tuple[str, ...] = ()  # command-line options of `prunebench run`
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = None  # prepares tmp_path/"results" etc.


def results_is_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    (tmp / "results").write_text("my notes\n")


def results_is_read_only(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """Tests may run as root, whom chmod does not stop: os.access is what the check asks."""
    results = tmp / "results"
    results.mkdir()
    results.chmod(0o555)
    real_access = os.access
    mp.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == results else real_access(p, mode, **kw))


def parent_is_read_only(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    real_access = os.access
    mp.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp else real_access(p, mode, **kw))


def data_dir_is_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    (tmp / "data").write_text("not a folder\n")


def data_env_is_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    (tmp / "data").write_text("not a folder\n")
    mp.setenv("PRUNEBENCH_DATA", str(tmp / "data"))


def garbage_database(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    (tmp / "results").mkdir()
    (tmp / "results" / "prunebench.db").write_bytes(bytes(range(256)) * 64)


def foreign_runs_table(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    import sqlite3

    (tmp / "results").mkdir()
    with sqlite3.connect(tmp / "results" / "prunebench.db") as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, distance_km REAL)")


def foreign_database(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    import sqlite3

    (tmp / "results").mkdir()
    with sqlite3.connect(tmp / "results" / "prunebench.db") as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")


def no_cuda(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.cuda, "is_available", lambda: False)


def one_gpu(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.cuda, "is_available", lambda: True)
    mp.setattr(torch.cuda, "device_count", lambda: 1)


def no_mps(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(torch.backends.mps, "is_available", lambda: False)


def nan_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    from prunebench.data import load_dataset
    from prunebench.models import create_model

    data = load_dataset("synthetic")
    model = create_model("mlp", data.input_shape, data.num_classes)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}, tmp / "data")


def unfit_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    torch.save({"1.weight": torch.zeros(3, 3)}, tmp / "data")  # written where the DATA placeholder points


CASES: dict[str, Case] = {
    # paths
    "results is a file": Case(key="--results", setup=results_is_a_file),
    "results is read-only": Case(key="--results", setup=results_is_read_only),
    "results cannot be created": Case(key="--results", setup=parent_is_read_only),
    "data_dir is a file": Case(("data_dir=DATA",), "data_dir", setup=data_dir_is_a_file),
    "PRUNEBENCH_DATA is a file": Case(key="data_dir", setup=data_env_is_a_file),
    "garbage prunebench.db": Case(key="prunebench.db", setup=garbage_database),
    "another program's database": Case(key="prunebench.db", setup=foreign_database),
    # seeds
    "seed 2**63": Case((f"seed={2**63}",), "seed"),
    "seed 2**31": Case((f"seed={2**31}",), "seed"),
    "negative seed": Case(("seed=-1",), "seed"),
    # numbers that are not finite
    "train.lr inf": Case(("train.lr=.inf",), "train.lr"),
    "finetune.lr inf": Case(("finetune.lr=.inf",), "finetune.lr"),
    "weight_decay inf": Case(("train.weight_decay=.inf",), "train.weight_decay"),
    "lr_gamma inf": Case(("train.lr_gamma=.inf",), "train.lr_gamma"),
    "momentum nan": Case(("finetune.momentum=.nan",), "finetune.momentum"),
    "compression inf": Case(("prune.compression=.inf",), "prune.compression"),
    "val_fraction nan": Case(("val_fraction=.nan",), "val_fraction"),
    # devices this torch cannot run
    "device tpu": Case(("device=tpu",), "device"),
    "device cuda without CUDA": Case(("device=cuda",), "device", setup=no_cuda),
    "device cuda:7 with one GPU": Case(("device=cuda:7",), "device", setup=one_gpu),
    "device mps without MPS": Case(("device=mps",), "device", setup=no_mps),
    # your own dense model
    "dense.checkpoint missing": Case(("dense.checkpoint=DATA",), "dense.checkpoint"),
    "dense.checkpoint that does not fit": Case(("dense.checkpoint=DATA",), "dense.checkpoint", setup=unfit_checkpoint),
    "dense.checkpoint of NaNs": Case(("dense.checkpoint=DATA",), "dense.checkpoint", setup=nan_checkpoint),
    "iterative rounds past the last weight": Case(
        ("prune.schedule=iterative", "prune.iterative.rounds=1000000"), "prune.iterative.rounds",
        change={"prune": {"strategy": "magnitude", "compression": None}}),
    "latency_batch_size of 10^8": Case(("latency=true", "latency_batch_size=100000000"), "latency_batch_size"),
    "a table named runs that is not prunebench's": Case(key="prunebench.db", setup=foreign_runs_table),
    # fits only once the data is known
    "no training example": Case(("val_fraction=0.9999",), "val_fraction"),
    "gradual end_step past fine-tuning": Case(
        ("prune.schedule=gradual", "prune.gradual.end_step=100000", "prune.gradual.frequency=5"), "prune.gradual"
    ),
    "rewind_step past dense training": Case(
        ("retrain.mode=weight-rewind", "retrain.rewind_step=100000"), "retrain.rewind_step"
    ),
    # values that used to be reinterpreted silently
    "epochs true": Case(("train.epochs=true",), "train.epochs"),
    "lr as a string": Case(change={"train": {"lr": "0.1"}}, key="train.lr"),
    "seed as a float": Case(("seed=1.5",), "seed"),
    "nesterov 1": Case(("train.nesterov=1",), "train.nesterov"),
    "milestone true": Case(("train.lr_schedule=step", "train.lr_milestones=[true]"), "train.lr_milestones.0"),
    "milestone at epoch -1": Case(("train.lr_schedule=step", "train.lr_milestones=[-1]"), "train.lr_milestones.0"),
    "milestone at the last epoch": Case(
        ("train.lr_schedule=step", "train.epochs=3", "train.lr_milestones=[1, 3]"), "train.lr_milestones"
    ),
    "fine-tuning milestone past its epochs": Case(
        ("finetune.lr_schedule=step", "finetune.lr_milestones=[5]"), "finetune.lr_milestones"
    ),
    "retraining mode its schedule cannot use": Case(
        ("prune.schedule=gradual", "retrain.mode=scratch"), "retrain.mode"
    ),
    "latency yes as a string": Case(change={"latency": "yes"}, key="latency"),
    "latency_repeats true": Case(("latency_repeats=true",), "latency_repeats"),
    "negative latency_repeats": Case(("latency_repeats=-3",), "latency_repeats"),
    "score_batches false": Case(("prune.score_batches=false",), "prune.score_batches"),
    "exclude_classifier no": Case(change={"prune": {"prunable": {"exclude_classifier": "no"}}},
                                  key="prune.prunable.exclude_classifier"),
    "include_bias 1": Case(("prune.prunable.include_bias=1",), "prune.prunable.include_bias"),
    # strategy options, as strict and finite as the spec's own keys
    "grasp temperature inf": Case(("prune.strategy=grasp", "prune.options.temperature=.inf"), "prune.options.temperature"),
    "grasp samples_per_class true": Case(
        ("prune.strategy=grasp", "prune.options.samples_per_class=true"), "prune.options.samples_per_class"
    ),
    "synflow rounds as a float": Case(("prune.strategy=synflow", "prune.options.rounds=2.5"), "prune.options.rounds"),
    "slimming sparsity nan": Case(
        ("prune.structure=channel", "prune.strategy=slimming", "prune.options.sparsity=.nan"), "prune.options.sparsity"
    ),
    "slimming epochs true": Case(
        ("prune.structure=channel", "prune.strategy=slimming", "prune.options.epochs=true"), "prune.options.epochs"
    ),
    # settings do not change results, so a sweep over them would run one run under another's name
    "sweep threads": Case(change={"sweep": {"threads": [1, 2]}}, key="sweep.threads"),
    "sweep device": Case(change={"sweep": {"device": ["cpu", "cpu"]}}, key="sweep.device"),
    "sweep data_dir": Case(change={"sweep": {"data_dir": ["a", "b"]}}, key="sweep.data_dir"),
    "sweep latency": Case(change={"sweep": {"latency": [True, False]}}, key="sweep.latency"),
    # language-model keys do not apply to a classifier: refused, not ignored
    "prune.sparsity for a classifier": Case(("prune.sparsity=0.5",), "prune.sparsity"),
    "recovery for a classifier": Case(("recovery.steps=3",), "recovery"),
    "scope row for a classifier": Case(("prune.scope=row",), "prune.scope"),
    "text dataset for a classifier": Case(("dataset=shakespeare",), "dataset"),
    "wanda for a classifier": Case(("prune.strategy=wanda",), "prune.strategy"),
    # command-line flags
    "--workers 0": Case(key="--workers", flags=("--workers", "0")),
    "--cpus-per-run 0": Case(key="--cpus-per-run", flags=("--executor", "ray", "--cpus-per-run", "0")),
    "--gpus-per-run nan": Case(key="--gpus-per-run", flags=("--executor", "ray", "--gpus-per-run", "nan")),
}


def files_under(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with its content hash (and every folder, as '')."""
    found = {}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return found


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in change.items():
        out[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    yield
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)


@pytest.mark.parametrize("name", CASES)
def test_refused_before_anything_is_written(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_modes: None
) -> None:
    case = CASES[name]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(merged(TINY, case.change)))
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    overrides = [a.replace("DATA", str(tmp_path / "data")) for a in case.overrides]
    before = files_under(tmp_path)
    assert main(["run", str(config), *overrides, "--results", str(tmp_path / "results"), *case.flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("prunebench: error: "), err
    named = err.removeprefix("prunebench: error: ").split(":")[0].split()[0]  # what the line is about
    assert named == case.key or named.endswith("/" + case.key), err
    assert files_under(tmp_path) == before  # no database, run folder or checkpoint; nothing overwritten


def float_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every float field of a spec, nested specs included."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
        for option in options:
            if isinstance(option, type) and issubclass(option, BaseModel):
                yield from float_fields(option, f"{prefix}{name}.")
            elif option is float or float in typing.get_args(option):
                yield f"{prefix}{name}"


FLOAT_FIELDS = sorted(set(float_fields(ExperimentSpec)) | set(float_fields(RunSettings)))


def test_float_fields_are_found() -> None:
    assert {"train.lr", "finetune.weight_decay", "prune.compression", "prune.gradual.initial_sparsity", "val_fraction"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("path", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_every_float_must_be_finite(path: str, value: float) -> None:
    data: dict[str, Any] = {"dataset": "synthetic", "model": "mlp"}
    node = data
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    with pytest.raises(ConfigError, match=f"^{path}: Input should be a finite number"):
        build_specs(data)


def test_layer_rates_must_be_finite() -> None:
    prune = {"schedule": "iterative", "scope": "layer", "iterative": {"rounds": 2, "layer_rates": {"5.weight": float("nan")}}}
    with pytest.raises(ConfigError, match="prune.iterative.layer_rates.5.weight: Input should be a finite number"):
        build_specs({"dataset": "synthetic", "model": "mlp", "prune": prune})


def test_integers_still_fill_float_fields_and_keep_their_ids() -> None:
    spec, _ = build_specs({**TINY, "train": {"lr": 1, "weight_decay": 0}, "prune": {"compression": 8}})
    assert isinstance(spec.train.lr, float) and isinstance(spec.prune.compression, float)
    same, _ = build_specs({**TINY, "train": {"lr": 1.0, "weight_decay": 0.0}, "prune": {"compression": 8.0}})
    assert spec.run_id == same.run_id


def test_the_largest_seed_is_accepted_and_documented() -> None:
    spec, _ = build_specs({**TINY, "seed": 2**31 - 1})
    assert spec.seed == 2**31 - 1
    assert "2147483647" in (Path(__file__).parents[1] / "docs" / "config.md").read_text()


def test_swept_setting_message_says_why() -> None:
    with pytest.raises(ConfigError, match="settings do not change results"):
        plan_from_mapping({**TINY, "sweep": {"threads": [1, 2]}})
    # a setting outside the sweep, with spec keys swept, is fine
    plan = plan_from_mapping({**TINY, "device": "cpu", "sweep": {"seed": [0, 1]}})
    assert len({j.spec.seed for j in plan.pruned_jobs}) == 2


def test_every_spec_is_strict_about_bools() -> None:
    """A bool is never taken for a number, in any spec (a new field cannot forget it)."""
    for path in ("train.epochs", "seed", "prune.batch_size", "prune.iterative.rounds", "prune.gradual.frequency", "retrain.rewind_step"):
        data: dict[str, Any] = {"dataset": "synthetic", "model": "mlp"}
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = True
        with pytest.raises(ConfigError, match=f"^{path}: "):
            build_specs(data)


def bool_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every boolean field of a spec, nested sections (prune.prunable) included."""
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from bool_fields(info.annotation, f"{prefix}{name}.")
        elif info.annotation is bool:
            yield f"{prefix}{name}"


BOOL_FIELDS = sorted(bool_fields(ExperimentSpec))


@pytest.mark.parametrize("path", BOOL_FIELDS)
@pytest.mark.parametrize("value", ["no", "false", 0, 1])
def test_every_bool_is_strict(path: str, value: object) -> None:
    assert {"train.nesterov", "prune.prunable.exclude_classifier", "prune.prunable.include_bias"} <= set(BOOL_FIELDS)
    data: dict[str, Any] = {"dataset": "synthetic", "model": "mlp"}
    node = data
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    with pytest.raises(ConfigError, match=f"^{path}: Input should be a valid boolean"):
        build_specs(data)


@pytest.mark.parametrize("section", ["train", "finetune"])
def test_milestones_must_fall_before_the_last_epoch(section: str) -> None:
    recipe = {"epochs": 4, "lr_schedule": "step"}
    spec, _ = build_specs({**TINY, section: {**recipe, "lr_milestones": [1, 3]}})
    assert getattr(spec, section).lr_milestones == (1, 3)
    with pytest.raises(ConfigError, match=rf"^{section}.lr_milestones: \[4, 9\] not below {section}.epochs \(4\).*1 to 3"):
        build_specs({**TINY, section: {**recipe, "lr_milestones": [2, 4, 9]}})


def test_a_shorter_scratch_recipe_keeps_the_dense_milestones() -> None:
    """retrain.scratch_epochs derives a shorter train recipe: the milestones it drops are not an error."""
    from prunebench.experiment.retrain import mode_named

    train = {"epochs": 6, "lr_schedule": "step", "lr_milestones": [2, 4]}
    spec, _ = build_specs({**TINY, "train": train, "retrain": {"mode": "scratch", "scratch_epochs": 3}})
    recipe = mode_named("scratch").recipe(spec)
    assert recipe.epochs == 3 and recipe.lr_milestones == (2, 4)


def option_fields() -> Iterator[tuple[str, str, str, type]]:
    """(structure, strategy, option, its number type) for every int or float option of every strategy."""
    from prunebench import catalog

    registry = catalog.strategies()  # weight and channel strategies alike
    for name in registry.names():
        strategy = registry.get(name)
        if not strategy.structures:  # language models only: their options go through the same parse_options
            continue
        structure = "channel" if "channel" in strategy.structures else "unstructured"
        for option, hint in typing.get_type_hints(strategy.options_type, include_extras=True).items():
            for kind in {int, float} & set(leaf_types(hint)):
                yield structure, name, option, kind


def leaf_types(hint: Any) -> Iterator[Any]:
    """The plain types inside ``Annotated[...]`` and unions (``Annotated[int, ...] | None`` -> int, None)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Annotated:
        yield from leaf_types(args[0])
    elif typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in args:
            yield from leaf_types(arg)
    else:
        yield hint


OPTION_FIELDS = sorted(set(option_fields()), key=str)


def test_option_fields_are_found() -> None:
    found = {(strategy, option, kind) for _, strategy, option, kind in OPTION_FIELDS}
    assert {("grasp", "temperature", float), ("grasp", "samples_per_class", int), ("synflow", "rounds", int),
            ("slimming", "sparsity", float), ("slimming", "epochs", int), ("snip", "batches", int)} <= found


@pytest.mark.parametrize(("structure", "strategy", "option", "kind"), OPTION_FIELDS,
                         ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_every_strategy_option_is_strict_and_finite(structure: str, strategy: str, option: str, kind: type) -> None:
    bad = [float("inf"), float("-inf"), float("nan"), "1"] if kind is float else [True, False, 2.5, "2"]
    for value in bad:
        prune = {"structure": structure, "strategy": strategy, "options": {option: value}}
        with pytest.raises(ConfigError, match=f"^prune.options.{option}: "):
            build_specs({"dataset": "synthetic", "model": "mlp", "prune": prune})


def test_integers_still_fill_float_options() -> None:
    from prunebench import catalog

    options = catalog.strategies().get("grasp").parse_options({"temperature": 100, "samples_per_class": 3})
    assert options.temperature == 100.0 and isinstance(options.temperature, float) and options.samples_per_class == 3


def empty_results(tmp: Path) -> None:
    from prunebench.store import ResultsDB

    ResultsDB(tmp / "good")


OTHER_COMMANDS: dict[str, tuple[list[str], str]] = {
    "results on a garbage database": (["results", "--results", "{tmp}/results"], "prunebench.db"),
    "report on a garbage database": (["report", "--results", "{tmp}/results", "--out", "{tmp}/out"], "prunebench.db"),
    "report --out a file": (["report", "--results", "{tmp}/good", "--out", "{tmp}/afile"], "--out"),
    "demo --results a file": (["demo", "--results", "{tmp}/afile"], "--results"),
    "reproduce --results a file": (["reproduce", "lth-lenet-mnist", "--results", "{tmp}/afile"], "--results"),
    "reproduce --data-dir a file": (
        ["reproduce", "lth-lenet-mnist", "--data-dir", "{tmp}/afile", "--results", "{tmp}/r"], "--data-dir"
    ),
}


@pytest.mark.parametrize("name", OTHER_COMMANDS)
def test_other_commands_refuse_bad_paths(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args, key = OTHER_COMMANDS[name]
    garbage_database(tmp_path, monkeypatch)
    empty_results(tmp_path)
    (tmp_path / "afile").write_text("my notes\n")
    before = files_under(tmp_path)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("prunebench: error: "), err
    named = err.removeprefix("prunebench: error: ").split(":")[0].split()[0]
    assert named == key or named.endswith("/" + key), err
    assert files_under(tmp_path) == before


SHIPPED_IDS = {  # digest of every run id a shipped config plans (spec version 1, every resolved value: CHANGELOG.md)
    "configs/digits-mlp.yaml": "53aeb3ec7610eb47",
    "configs/mnist-lenet-300-100-sweep.yaml": "080ae199d06c4654",
    "configs/mnist-lenet-300-100.yaml": "4346289b2cbad1cd",
    "configs/mnist-lenet-300-100-recipes.yaml": "189c91334e814c9f",
    "configs/mnist-lenet-300-100-layer-shuffle.yaml": "9d9498261293b381",
}


@pytest.mark.parametrize("path", SHIPPED_IDS)
def test_shipped_configs_keep_their_run_ids(path: str) -> None:
    from prunebench.plan.sweep import load_plan

    ids = [job.run_id for job in load_plan(Path(__file__).parents[1] / path).jobs]
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16] == SHIPPED_IDS[path]


def test_reproductions_keep_their_run_ids() -> None:
    from prunebench.reproduce.common import experiment_spec, load_reproduction_config

    han = load_reproduction_config("han-lenet-mnist")["models"]
    assert experiment_spec(han["lenet-300-100"]["experiment"], 0).run_id == "ca60c08fcebb06b2"
    assert experiment_spec(han["lenet-5"]["experiment"], 0).run_id == "5062381f868f6ec9"
    assert experiment_spec(load_reproduction_config("lth-lenet-mnist")["experiment"], 0).run_id == "aa30f410d558d047"
    deep = load_reproduction_config("deep-compression-lenet-mnist")["models"]
    assert experiment_spec(deep["lenet-300-100"]["experiment"], 0).run_id == "3c213aded74b03e2"
    assert experiment_spec(deep["lenet-5"]["experiment"], 0).run_id == "332444e3bb7e910e"
