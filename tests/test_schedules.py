"""Schedules as pure functions, retraining modes, and every schedule x mode end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.catalog import RETRAIN_MODES, SCHEDULES
from prunebench.spec import build_specs
from prunebench.data import load_dataset
from prunebench.errors import ConfigError
from prunebench.experiment import run_experiment
from prunebench.store.artifacts import load_tensors
from prunebench.experiment.retrain import fresh_weights, initial_weights, retrain, rewind_weights
from prunebench.pruning import Mask
from prunebench.pruning.schedules import (
    cubic_keep,
    cubic_sparsity,
    is_update_step,
    iterative_ladder,
    ladder_to_target,
    layer_ladder,
    update_steps,
)

LENET_300_100 = {"1.weight": 784 * 300, "3.weight": 300 * 100, "5.weight": 100 * 10}


def test_cubic_schedule_values_at_given_steps() -> None:
    # s_t = 0.9 + (0 - 0.9) * (1 - t / 100) ** 3 with t0 = 0, dt = 10, n = 10
    values = {t: cubic_sparsity(t, 0.0, 0.9, 0, 10, 10) for t in (0, 10, 50, 100, 150)}
    assert values[0] == pytest.approx(0.0)
    assert values[10] == pytest.approx(0.9 - 0.9 * 0.9**3)
    assert values[50] == pytest.approx(0.7875)
    assert values[100] == pytest.approx(0.9)
    assert values[150] == pytest.approx(0.9)
    assert cubic_sparsity(4, 0.5, 0.9, 5, 10, 10) == 0.0  # nothing is pruned before t0
    assert cubic_sparsity(5, 0.5, 0.9, 5, 10, 10) == pytest.approx(0.5)


def test_cubic_keep_lands_exactly_on_the_target_and_only_shrinks() -> None:
    keeps = [cubic_keep(t, 1000, 123, 0.0, 20, 5, 8) for t in range(0, 80)]
    assert keeps[0] == 1000 and keeps[20] == 1000
    assert keeps[20 + 5 * 8] == 123 and keeps[-1] == 123
    assert all(a >= b for a, b in zip(keeps, keeps[1:]))
    assert update_steps(20, 5, 8) == [20, 25, 30, 35, 40, 45, 50, 55, 60]
    assert is_update_step(25, 20, 5, 8) and not is_update_step(26, 20, 5, 8) and not is_update_step(65, 20, 5, 8)


def test_lottery_ticket_ladder_is_exact() -> None:
    # Frankle & Carbin 2019: 20% per round, the output layer 10%
    ladder = layer_ladder(LENET_300_100, 0.2, {"5.weight": 0.1}, 15)
    total = sum(LENET_300_100.values())
    assert ladder[2] == {"1.weight": 120422, "3.weight": 15360, "5.weight": 729}
    remaining = {r: round(100 * sum(ladder[r - 1].values()) / total, 1) for r in (3, 7, 9, 15)}
    assert remaining == {3: 51.3, 7: 21.1, 9: 13.5, 15: 3.6}


def test_global_ladders_and_ladders_to_a_target() -> None:
    assert iterative_ladder(1000, 0.5, 3) == [500, 250, 125]
    assert ladder_to_target(1000, 0.6, 83) == [400, 160, 83]
    assert ladder_to_target(1000, 0.5, 125) == [500, 250, 125]
    assert ladder_to_target(1000, 0.5, 1000) == [1000]


# 600 training examples in batches of 128: 5 steps per epoch keep every run well under a second
BASE = {
    "dataset": "synthetic", "model": "mlp", "val_fraction": 0.5, "threads": 1,
    "train": {"epochs": 1, "batch_size": 128}, "finetune": {"epochs": 1, "batch_size": 128},
}
EXTRA = {
    "iterative": {"iterative": {"rate": 0.5}},
    "gradual": {"gradual": {"frequency": 1, "end_step": 4}},
    "at-init": {"strategy": "snip"},
    "one-shot": {},
}
RETRAIN_EXTRA = {"lr-rewind": {"rewind_epoch": 0}, "weight-rewind": {"rewind_step": 3}, "scratch": {"scratch_epochs": 1}}
ALLOWED_MODES = {s: [m for m in RETRAIN_MODES if s in RETRAIN_MODES.get(m).schedules] for s in SCHEDULES}
COMBINATIONS = [(s, m) for s, modes in ALLOWED_MODES.items() for m in modes]


def spec_for(schedule: str, mode: str, **more):  # type: ignore[no-untyped-def]
    retrain = {"mode": mode, **RETRAIN_EXTRA.get(mode, {})}
    if schedule != "iterative" and mode != "weight-rewind":
        retrain.pop("rewind_step", None)
    return build_specs({**BASE, "prune": {"schedule": schedule, **EXTRA[schedule]}, "retrain": retrain, **more})


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize(("schedule", "mode"), COMBINATIONS)
def test_every_sensible_schedule_and_mode_runs_end_to_end(schedule: str, mode: str, results: Path) -> None:
    spec, settings = spec_for(schedule, mode)
    result = run_experiment(spec, settings, results)
    assert result.retraining.schedule == schedule and result.retraining.mode == mode
    assert result.sizes.compression_ratio == pytest.approx(4.0, rel=1e-3)
    mask = Mask(load_tensors(results / spec.run_id / "mask.pt"))
    model = load_tensors(results / spec.run_id / "model.pt")
    assert all(bool((model[name][~keep] == 0).all()) for name, keep in mask.items())
    if schedule == "iterative":
        assert [r["prunable_nonzero"] for r in result.retraining.rounds][-1] == mask.kept
        rounds = [Mask(load_tensors(results / spec.run_id / "rounds" / f"mask_{i:02d}.pt")) for i in (1, 2, 3)]
        assert rounds[1].is_subset_of(rounds[0]) and rounds[2].is_subset_of(rounds[1])
    if schedule == "gradual":
        steps = [u["step"] for u in result.retraining.gradual_updates]
        assert steps == [1, 2, 3, 4]  # every dt = 1 step from t0 = 0 to 4; step 0 keeps all


REFUSED = [(s, m) for s in ALLOWED_MODES for m in ("finetune", "lr-rewind", "weight-rewind", "reinit", "scratch")
           if m not in ALLOWED_MODES[s]]


@pytest.mark.parametrize(("schedule", "mode"), REFUSED)
def test_senseless_combinations_are_refused_naming_the_fields(schedule: str, mode: str) -> None:
    with pytest.raises(ConfigError, match=r"retrain\.mode .* prune\.schedule"):
        spec_for(schedule, mode)


@pytest.mark.parametrize(("prune", "retrain", "fields"), [
    ({"iterative": {"rate": 0.5}}, {}, "prune.iterative"),
    ({"schedule": "iterative", "iterative": {"rounds": 2}, "compression": 8}, {}, "prune.iterative.rounds"),
    ({"schedule": "iterative", "iterative": {"rounds": 2, "layer_rates": {"*": 0.1}}}, {}, "prune.scope"),
    ({"structure": "2:4", "schedule": "iterative"}, {}, "prune.structure"),
    ({"structure": "2:4", "compression": 8}, {}, "prune.compression"),
    ({}, {"rewind_step": 3}, "retrain.rewind_step"),
    ({}, {"mode": "lr-rewind", "rewind_epoch": 1}, "retrain.rewind_epoch"),
    ({}, {"scratch_epochs": 2}, "retrain.scratch_epochs"),
])
def test_misplaced_settings_are_refused(prune: dict, retrain: dict, fields: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=fields.replace(".", r"\.")):
        build_specs({**BASE, "prune": prune, "retrain": retrain})


def test_gradual_window_must_fit_in_fine_tuning(results: Path) -> None:
    spec, settings = build_specs({**BASE, "prune": {"schedule": "gradual", "gradual": {"frequency": 10}}})
    with pytest.raises(ConfigError, match="prune.gradual"):
        run_experiment(spec, settings, results)


def test_weight_rewind_to_zero_resets_survivors_to_their_initial_values() -> None:
    spec, _ = build_specs({**BASE, "train": {"epochs": 0}})
    data = load_dataset("synthetic", val_fraction=0.5, seed=0)
    from prunebench.experiment import build_model

    model = build_model(spec, data)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # stands in for training
    init = initial_weights(spec, data, spec.seed)
    mask = Mask({"1.weight": torch.rand(256, 64, generator=torch.Generator().manual_seed(0)) > 0.5})
    retrain(model, data, spec, mask, "weight-rewind", rewind_state=init, stage="test")  # 0 epochs: only the reset
    weight = model.state_dict()["1.weight"]
    assert torch.equal(weight[mask["1.weight"]], init["1.weight"][mask["1.weight"]])
    assert bool((weight[~mask["1.weight"]] == 0).all())
    torch.testing.assert_close(model.state_dict()["3.weight"], init["3.weight"])

    retrain(model, data, spec, mask, "reinit", rewind_state=None, stage="test")
    fresh = fresh_weights(spec, data)
    assert torch.equal(model.state_dict()["1.weight"], fresh["1.weight"] * mask["1.weight"])
    assert not torch.equal(fresh["3.weight"], init["3.weight"])


def test_rewinding_to_the_last_step_replays_dense_training_exactly(results: Path) -> None:
    spec, settings = build_specs({**BASE, "prune": {"schedule": "one-shot"}})
    run_experiment(spec, settings, results)
    data = load_dataset("synthetic", val_fraction=0.5, seed=0)
    last = -(-data.train_x.shape[0] // 128)  # one epoch of batches of 128
    rewound = rewind_weights(spec.model_copy(update={"retrain": spec.retrain.model_copy(update={"rewind_step": last})}),
                             data, results, torch.device("cpu"))
    dense = load_tensors(results / "dense" / spec.dense_spec().content_hash() / "model.pt")
    for name, tensor in dense.items():
        torch.testing.assert_close(rewound[name], tensor)


def test_default_spec_keeps_its_run_id() -> None:
    spec, _ = build_specs({"dataset": "synthetic", "model": "mlp"})
    assert spec.run_id == "425fe48785b5c6d2"  # spec version 1: every resolved value hashed (CHANGELOG.md)


def test_iterative_blocks_with_layer_rates_keep_whole_blocks(results: Path) -> None:
    spec, settings = build_specs({
        **BASE,
        "prune": {"schedule": "iterative", "scope": "layer", "structure": "block:2x2",
                  "iterative": {"rate": 0.5, "rounds": 2, "layer_rates": {"3.weight": 0.25}}},
    })
    result = run_experiment(spec, settings, results)
    mask = Mask(load_tensors(results / spec.run_id / "mask.pt"))
    from prunebench.pruning.structures import check_structure, parse_structure

    check_structure(mask, parse_structure("block:2x2"))
    assert mask["1.weight"].sum() == round(256 * 64 * 0.25)  # two rounds at 50%
    assert mask["3.weight"].sum() == round(128 * 256 * 0.75**2 / 4) * 4  # whole blocks at 25% per round
    assert len(result.retraining.rounds) == 2


def test_lr_rewind_runs_the_rest_of_the_dense_schedule(results: Path) -> None:
    spec, settings = build_specs({
        **BASE,
        "train": {"epochs": 3, "batch_size": 128, "lr": 0.1, "lr_schedule": "step", "lr_milestones": [1, 2]},
        "retrain": {"mode": "lr-rewind", "rewind_epoch": 1},
    })
    log = run_experiment(spec, settings, results).retraining.log
    assert [e["epoch"] for e in log] == [2, 3]
    assert [e["lr"] for e in log] == pytest.approx([0.01, 0.001])


def test_scratch_trains_for_its_own_budget(results: Path) -> None:
    spec, settings = build_specs({**BASE, "retrain": {"mode": "scratch", "scratch_epochs": 2}})
    result = run_experiment(spec, settings, results)
    assert len(result.retraining.log) == 2
    assert result.retraining.recipe["epochs"] == 2 and result.retraining.recipe["lr"] == 0.1


def test_gradual_ends_at_three_quarters_of_fine_tuning_by_default(results: Path) -> None:
    spec, settings = build_specs({
        **BASE, "finetune": {"epochs": 4, "batch_size": 128},  # 5 steps per epoch: 20 steps
        "prune": {"schedule": "gradual", "compression": 8, "gradual": {"frequency": 5}},
    })
    result = run_experiment(spec, settings, results)
    assert [u["step"] for u in result.retraining.gradual_updates] == [5, 10, 15]
    assert result.sizes.compression_ratio == pytest.approx(8.0, rel=1e-3)
