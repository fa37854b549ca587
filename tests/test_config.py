import json

import pytest

from prunebench.spec import ExperimentSpec, PruneSpec, TrainSpec, apply_overrides, build_specs
from prunebench.errors import ConfigError

ISSUE_EXAMPLE = {
    "dataset": "mnist",
    "model": "lenet-300-100",
    "seed": 0,
    "train": {"epochs": 10, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0001, "batch_size": 128},
    "prune": {"strategy": "magnitude", "scope": "global", "compression": 8},
    "finetune": {"epochs": 2, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 128},
}


def test_run_ids_are_pinned() -> None:
    """A refactor must not silently change run ids: every cached result would be orphaned.

    A change of these ids is a change of the cache's meaning: say why in CHANGELOG.md.
    (Spec version 1: every resolved value hashed; changed once more when the recipes gained
    onecycle, label smoothing and a weight average.)
    """
    spec, _ = build_specs(ISSUE_EXAMPLE)
    assert spec.run_id == "790499f194a79608"
    assert spec.dense_spec().content_hash() == "560147ebb4847a93"
    assert ExperimentSpec(dataset="digits", model="mlp").run_id == "eb4515fe2d24ff0e"
    assert ExperimentSpec(dataset="digits", model="mlp", prune=PruneSpec(compression=16)).run_id == "12dfca09565f4c88"


def test_canonical_json_spells_out_every_default_and_sorts_keys() -> None:
    spec = ExperimentSpec(dataset="digits", model="mlp", train=TrainSpec(epochs=3))
    data = json.loads(spec.canonical_json())
    assert data["train"] == {**TrainSpec().model_dump(mode="json"), "epochs": 3}  # no key left out for being a default
    assert json.loads(spec.replace(train=TrainSpec(max_steps_per_epoch=5)).canonical_json())["train"]["max_steps_per_epoch"] == 5
    assert data["finetune"]["lr"] == 0.01 and data["prune"]["compression"] == 4.0  # an unset target resolved
    assert data["prune"]["merge"] is False and data["prune"]["shuffle"] is False and data["subset"] is None
    assert data["retrain"] == {"mode": "finetune", "rewind_step": 0, "rewind_epoch": 0, "scratch_epochs": None}
    assert spec.canonical_json().startswith('{"compress":null,"dataset":"digits","dense":{"sha256":null},"finetune":{')
    # every default is in the hash, so a changed default changes the ids of the specs it changes;
    # spelling a default out does not change the id
    assert ExperimentSpec(dataset="digits", model="mlp", seed=0).run_id == ExperimentSpec(dataset="digits", model="mlp").run_id
    assert ExperimentSpec(dataset="digits", model="mlp", prune=PruneSpec(compression=4)).run_id == spec.replace(
        train=TrainSpec()).run_id


def test_settings_do_not_change_the_run_id() -> None:
    a, _ = build_specs(ISSUE_EXAMPLE)
    b, settings = build_specs({**ISSUE_EXAMPLE, "data_dir": "/elsewhere", "threads": 1})
    assert a.run_id == b.run_id and str(settings.data_dir) == "/elsewhere"


def test_overrides_are_dotted_and_typed() -> None:
    merged = apply_overrides(ISSUE_EXAMPLE, ["prune.compression=16", "seed=1", "prune.scope=layer"])
    assert merged["prune"]["compression"] == 16 and merged["seed"] == 1 and merged["prune"]["scope"] == "layer"
    assert ISSUE_EXAMPLE["seed"] == 0  # the original is untouched
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ISSUE_EXAMPLE, ["prune.compression"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prune": {"strategy": "magnitud"}}, "prune.strategy: unknown strategy 'magnitud'; did you mean magnitude"),
        ({"model": "lenet300"}, "model: unknown model 'lenet300'; did you mean lenet-300-100"),
        ({"dataset": "mnst"}, "dataset: unknown dataset 'mnst'; did you mean mnist"),
        ({"prune": {"compression": 1}}, "prune.compression: Input should be greater than 1"),
        ({"train": {"epochs": "ten"}}, "train.epochs: Input should be a valid integer"),
        ({"train": {"optimiser": "sgd"}}, "train.optimiser: unknown key"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"prune": {"scope": "local"}}, "prune.scope: Input should be 'global', 'layer' or 'row'"),
        ({"prune": {"options": {"beta": 1}}}, "options.beta: unknown option of strategy magnitude"),
    ],
)
def test_bad_values_name_the_field(change: dict, message: str) -> None:
    data = {**ISSUE_EXAMPLE, **{k: {**ISSUE_EXAMPLE.get(k, {}), **v} if isinstance(v, dict) else v for k, v in change.items()}}
    with pytest.raises(ConfigError) as error:
        build_specs(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
