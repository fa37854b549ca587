import pytest

from prunebench.errors import ConfigError
from prunebench.plan.sweep import expand_grid, plan_from_mapping

BASE = {
    "dataset": "synthetic",
    "model": "mlp",
    "train": {"epochs": 1, "batch_size": 64},
    "finetune": {"epochs": 1, "batch_size": 64},
}


def test_grid_is_the_product_of_its_lists() -> None:
    points = expand_grid({"prune.strategy": ["a", "b"], "seed": [0, 1, 2]})
    assert len(points) == 6
    assert {"prune.strategy": "b", "seed": 2} in points


def test_sweep_adds_random_control_and_one_dense_job_per_seed() -> None:
    plan = plan_from_mapping({
        **BASE,
        "sweep": {"prune.strategy": ["magnitude", "grad_magnitude"], "prune.scope": ["global", "layer"],
                  "prune.compression": [2, 4, 8], "seed": [0, 1]},
    })
    pruned = plan.pruned_jobs
    assert len(pruned) == (2 * 2 + 1) * 3 * 2  # random (global) added at every level and seed
    random = [j for j in pruned if j.spec.prune.strategy == "random"]
    assert sorted((j.spec.prune.scope, j.spec.prune.compression, j.spec.seed) for j in random) == sorted(
        ("global", level, seed) for level in (2.0, 4.0, 8.0) for seed in (0, 1)
    )
    assert len(plan.dense_jobs) == 2  # shared by every run of that seed
    assert len({j.run_id for j in plan.jobs}) == len(plan.jobs)


def test_baselines_can_be_turned_off_and_single_runs_get_none() -> None:
    plan = plan_from_mapping({**BASE, "baselines": False, "sweep": {"prune.compression": [2, 4]}})
    assert {j.spec.prune.strategy for j in plan.pruned_jobs} == {"magnitude"}
    single = plan_from_mapping(BASE)
    assert len(single.pruned_jobs) == 1 and not single.is_sweep


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"prune.compression": 4}, "sweep.prune.compression: must be a non-empty list"),
        ({"prune.compression": []}, "must be a non-empty list"),
        ([1, 2], "sweep: must map dotted keys"),
        ({"prune.strategy": ["magnitude", "magnitud"]}, "unknown strategy 'magnitud'; did you mean magnitude"),
        ({"prune.colour": [1]}, "prune.colour: unknown key (sweep point prune.colour=1)"),
    ],
)
def test_bad_sweeps_are_refused(sweep: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        plan_from_mapping({**BASE, "sweep": sweep})
    assert message in str(error.value)


def test_a_job_describes_its_own_target_kind() -> None:
    """Progress lines name what a run was asked to reach, not a default compression."""
    plan = plan_from_mapping({"dataset": "digits", "model": "mlp", "prune": {"structure": "2:4"}})
    assert plan.pruned_jobs[0].describe().endswith("magnitude/global 2:4 seed 0")
    plan = plan_from_mapping({"dataset": "digits", "model": "mlp", "prune": {"compression": 8}})
    assert plan.pruned_jobs[0].describe().endswith("magnitude/global 8x seed 0")


def test_a_list_of_grids_is_the_union_of_their_products() -> None:
    from prunebench.plan.sweep import expand_grid

    grids = [{"prune.compression": [2, 4], "seed": [0, 1]}, {"prune.structure": ["2:4"], "prune.compression": [None]}]
    points = expand_grid(grids)
    assert len(points) == 5 and points[-1] == {"prune.structure": "2:4", "prune.compression": None}
    plan = plan_from_mapping({"dataset": "synthetic", "model": "mlp", "sweep": grids, "baselines": False})
    assert sorted(j.spec.prune.structure for j in plan.pruned_jobs) == ["2:4", *["unstructured"] * 4]
    with pytest.raises(ConfigError, match=r"^sweep\[1\]\.seed: must be a non-empty list"):
        expand_grid([{"seed": [0]}, {"seed": []}])
