"""Sanity controls (random, layer-shuffle, reinit): planned by the sweep, run, and reported beside
their method."""

from pathlib import Path

import pytest
import torch

from prunebench.errors import ConfigError
from prunebench.executors import make_executor
from prunebench.plan.controls import CONTROLS, control_of
from prunebench.plan.runner import run_plan
from prunebench.plan.sweep import plan_from_mapping
from prunebench.pruning.mask import Mask, shuffled_within
from prunebench.report.aggregate import build_groups
from prunebench.report.checklist import evaluate_checklist
from prunebench.report.tables import controls_table
from prunebench.store import ResultsDB
from prunebench.store.artifacts import load_tensors

BASE = {
    "dataset": "synthetic", "model": "mlp", "threads": 1,
    "train": {"epochs": 2, "lr": 0.05, "batch_size": 64}, "finetune": {"epochs": 1, "lr": 0.01, "batch_size": 64},
}


def test_shuffled_within_keeps_each_tensors_count_and_moves_the_entries() -> None:
    generator = torch.Generator().manual_seed(0)
    mask = Mask({"a": torch.rand(20, 30, generator=generator) < 0.1, "b": torch.rand(50, generator=generator) < 0.5})
    shuffled = shuffled_within(mask, torch.Generator().manual_seed(1))
    assert {n: int(t.sum()) for n, t in shuffled.items()} == {n: int(t.sum()) for n, t in mask.items()}
    assert not torch.equal(shuffled["a"], mask["a"]) and shuffled["a"].shape == mask["a"].shape
    again = shuffled_within(mask, torch.Generator().manual_seed(1))
    assert all(torch.equal(again[n], shuffled[n]) for n in mask)  # seeded


def test_default_controls_leave_existing_sweeps_unchanged() -> None:
    sweep = {**BASE, "sweep": {"prune.strategy": ["magnitude", "snip"], "prune.compression": [2, 4]}}
    default = plan_from_mapping(sweep)
    explicit = plan_from_mapping({**sweep, "controls": ["random"]})
    assert [j.run_id for j in default.jobs] == [j.run_id for j in explicit.jobs]
    assert {j.spec.prune.strategy for j in default.pruned_jobs if j.role == "control"} == {"random"}
    everything = plan_from_mapping({**sweep, "controls": ["random", "layer-shuffle", "reinit"]})
    controls = [j.spec for j in everything.pruned_jobs if j.role == "control"]
    assert sum(s.prune.shuffle for s in controls) == 4 and sum(s.retrain.mode == "reinit" for s in controls) == 4
    assert {j.run_id for j in default.jobs} < {j.run_id for j in everything.jobs}  # method ids unchanged


@pytest.mark.parametrize(("value", "message"), [
    ("random", "controls: must be a list"), (["shuffle"], "did you mean layer-shuffle"),
    (["reinit", "reinit"], "appears more than once"),
])
def test_bad_controls_name_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_from_mapping({**BASE, "controls": value, "sweep": {"prune.compression": [2]}})


def test_layer_shuffle_refuses_structures_it_would_break() -> None:
    with pytest.raises(ConfigError, match="prune.shuffle needs prune.structure 'unstructured'"):
        plan_from_mapping({**BASE, "prune": {"shuffle": True, "structure": "2:4"}})
    plan = plan_from_mapping({**BASE, "prune": {"structure": "2:4"}, "controls": ["layer-shuffle"],
                              "sweep": {"seed": [0]}})
    assert [j.role for j in plan.pruned_jobs] == ["method"]  # no shuffle of an N:M mask


def test_layer_shuffle_and_reinit_run_and_are_reported_beside_their_method(tmp_path: Path) -> None:
    config = {**BASE, "controls": ["random", "layer-shuffle", "reinit"],
              "sweep": {"prune.compression": [4, 16], "prune.scope": ["layer", "global"], "seed": [0, 1]}}
    run_plan(plan_from_mapping(config), tmp_path, make_executor("serial"), live=False)
    rows = [r for r in ResultsDB(tmp_path).rows() if r["kind"] == "pruned"]
    assert all(r["status"] == "completed" for r in rows)
    specs = {r["run_id"]: r["result"].spec for r in rows}
    masks = {r["run_id"]: load_tensors(tmp_path / r["run_id"] / "mask.pt") for r in rows}

    def run_of(shuffle: bool, mode: str, scope: str, compression: float, seed: int) -> str:
        (found,) = [k for k, s in specs.items() if s["prune"]["strategy"] == "magnitude" and s["prune"]["shuffle"] == shuffle
                    and s["retrain"]["mode"] == mode and s["prune"]["scope"] == scope
                    and s["prune"]["compression"] == compression and s["seed"] == seed]
        return found

    for scope in ("layer", "global"):
        for compression in (4.0, 16.0):
            for seed in (0, 1):
                method = masks[run_of(False, "finetune", scope, compression, seed)]
                shuffled = masks[run_of(True, "finetune", scope, compression, seed)]
                reinit = masks[run_of(False, "reinit", scope, compression, seed)]
                assert {n: int(t.sum()) for n, t in shuffled.items()} == {n: int(t.sum()) for n, t in method.items()}
                assert all(not torch.equal(shuffled[n], method[n]) for n in method)
                assert all(torch.equal(reinit[n], method[n]) for n in method)  # the same mask, fresh weights
    (group,) = build_groups(ResultsDB(tmp_path).rows())
    names = {c.label for c in group.curves.values()}
    assert "magnitude layer-shuffle (prune.scope=global, retrain.mode=finetune)" in names
    for curve in group.curves.values():
        if curve.role == "control":
            assert curve.control == control_of(curve.settings)
            assert (group.source_of(curve) is None) == (curve.control == "random")
    table = controls_table(group)
    assert len(table.rows) == 2 * 2 * 2  # 2 scopes x 2 controls x 2 levels
    assert {row[1] for row in table.rows} == {"layer-shuffle", "reinit"} and all(row[6] == "2" for row in table.rows)
    checks = {c.name: c for c in evaluate_checklist(group)}
    assert checks["every strategy fine-tuned with the same recipe"].passed  # reinit's own recipe is by design
    assert checks["random-pruning control at every level of every strategy"].passed


def test_every_registered_control_has_a_description() -> None:
    assert set(CONTROLS) == {"random", "layer-shuffle", "reinit"}
    assert all(CONTROLS.get(n).description for n in CONTROLS)
