"""The spec of a language-model run: which keys apply, the target, the run id and the dense id."""

from __future__ import annotations

from typing import Any

import pytest

from prunebench.spec import build_specs
from prunebench.errors import ConfigError
from prunebench.record import Target

LM: dict[str, Any] = {
    "model": "smollm2-135m",
    "dataset": "shakespeare",
    "prune": {"strategy": "magnitude", "scope": "row", "sparsity": 0.5, "calibration": {"n_samples": 8, "seq_len": 64}},
    "evaluation": {"window": 128, "stride": 128},
}


def spec_of(**change: Any) -> Any:
    data = {**LM, **{k: {**LM.get(k, {}), **v} if isinstance(v, dict) else v for k, v in change.items()}}
    return build_specs(data)[0]


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        build_specs(data)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_lm_spec_knows_its_kind_and_hashes_only_what_applies() -> None:
    spec = spec_of()
    assert spec.is_lm
    resolved = spec.resolved()
    for key in ("train", "finetune", "retrain", "val_fraction"):
        assert key not in resolved
    for key in ("compression", "schedule", "prunable", "score_batches", "iterative"):
        assert key not in resolved["prune"]
    assert resolved["prune"]["sparsity"] == 0.5 and resolved["evaluation"]["window"] == 128
    assert spec.recorded()["prune"]["sparsity"] == 0.5 and "train" not in spec.recorded()


def test_an_unset_sparsity_is_hashed_as_its_default() -> None:
    prune = {k: v for k, v in LM["prune"].items() if k != "sparsity"}
    implicit = build_specs({**LM, "prune": prune})[0]
    assert implicit.run_id == spec_of().run_id
    assert Target.from_prune(implicit.recorded()["prune"]) == Target(kind="sparsity", value=0.5)
    assert Target(kind="sparsity", value=0.5).label() == "50%"


def test_nm_is_its_own_target() -> None:
    prune = {k: v for k, v in LM["prune"].items() if k != "sparsity"}
    spec = build_specs({**LM, "prune": {**prune, "structure": "2:4"}})[0]
    assert spec.prune.resolved_sparsity == 0.5
    assert Target.from_prune(spec.recorded()["prune"]) == Target(kind="nm", value="2:4")
    assert spec.run_id != spec_of().run_id


def test_dense_id_is_the_model_and_its_evaluation_not_the_seed_or_method() -> None:
    dense = spec_of().dense_spec().content_hash()
    assert spec_of(seed=3).dense_spec().content_hash() == dense
    assert spec_of(prune={"strategy": "random", "scope": "global"}).dense_spec().content_hash() == dense
    assert spec_of(prune={"sparsity": 0.7}).dense_spec().content_hash() == dense
    assert spec_of(evaluation={"protocol": "sliding", "stride": 64}).dense_spec().content_hash() != dense
    # the same windows (disjoint, 128) by the other protocol are another dense figure: the tail is scored
    assert spec_of(evaluation={"protocol": "sliding"}).dense_spec().content_hash() != dense
    assert spec_of(seed=3).run_id != spec_of().run_id  # the calibration draw is the run's seed


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"train": {"epochs": 3}}, "train"),
        ({"finetune": {"lr": 0.5}}, "finetune"),
        ({"val_fraction": 0.2}, "val_fraction"),
        ({"prune": {"compression": 4}}, "prune.compression"),
        ({"prune": {"schedule": "iterative"}}, "prune.schedule"),
        ({"prune": {"sparsity": 1.0}}, "prune.sparsity"),
        ({"prune": {"sparsity": 0}}, "prune.sparsity"),
        ({"prune": {"sparsity": -0.5}}, "prune.sparsity"),
        ({"prune": {"structure": "2:4"}}, "prune.sparsity"),  # N:M fixes the sparsity: not both
        ({"prune": {"strategy": "wanda", "structure": "channel"}}, "prune.structure"),
        ({"prune": {"allocation": "owl", "structure": "2:4", "sparsity": None}}, "prune.allocation"),
        ({"prune": {"allocation": "uniformish"}}, "prune.allocation"),
        ({"prune": {"calibration": {"n_samples": 0}}}, "prune.calibration.n_samples"),
        ({"evaluation": {"stride": 256}}, "evaluation.stride"),
        ({"evaluation": {"stride": 64}}, "evaluation.stride"),  # papers: disjoint windows only
        ({"evaluation": {"protocol": "sliding", "stride": 256}}, "evaluation.stride"),
        ({"evaluation": {"protocol": "wanda"}}, "evaluation.protocol"),
        ({"evaluation": {"protocol": None}}, "evaluation.protocol"),
        ({"evaluation": {"tokens": 100}}, "evaluation.tokens"),  # papers: less than one window of 128
        ({"recovery": {"steps": -1}}, "recovery.steps"),
        ({"dataset": "digits"}, "dataset"),
        ({"model": "smollm3"}, "model"),
    ],
)
def test_lm_mistakes_name_their_key(change: dict[str, Any], key: str) -> None:
    data = {**LM, **{k: {**LM.get(k, {}), **v} if isinstance(v, dict) else v for k, v in change.items()}}
    assert refused(data).startswith(key), refused(data)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"prune": {"sparsity": 0.5}}, "prune.sparsity"),
        ({"prune": {"calibration": {"n_samples": 4}}}, "prune.calibration"),
        ({"prune": {"allocation": "owl"}}, "prune.allocation"),
        ({"prune": {"scope": "row"}}, "prune.scope"),
        ({"evaluation": {"window": 64}}, "evaluation"),
        ({"recovery": {"steps": 5}}, "recovery"),
        ({"dataset": "shakespeare"}, "dataset"),
    ],
)
def test_lm_keys_are_refused_for_classifiers(change: dict[str, Any], key: str) -> None:
    data: dict[str, Any] = {"model": "mlp", "dataset": "synthetic", **change}
    assert refused(data).startswith(key), refused(data)


def test_a_classifier_spec_records_no_lm_keys() -> None:
    spec = build_specs({"model": "mlp", "dataset": "synthetic"})[0]
    assert not spec.is_lm
    for key in ("evaluation", "recovery"):
        assert key not in spec.resolved() and key not in spec.recorded()
    for key in ("sparsity", "allocation", "calibration"):
        assert key not in spec.resolved()["prune"] and key not in spec.recorded()["prune"]


def test_the_papers_protocol_is_the_default_and_resolves_its_stride() -> None:
    spec = build_specs({**LM, "evaluation": {"window": 128}})[0]
    assert spec.evaluation.protocol == "papers" and spec.evaluation.resolved_stride == 128
    resolved = spec.resolved()["evaluation"]
    assert {k: resolved[k] for k in ("protocol", "window", "stride", "tokens")} == \
        {"protocol": "papers", "window": 128, "stride": 128, "tokens": 16384}
    # writing the resolved stride out is the same run
    assert spec.run_id == spec_of().run_id
    sliding = build_specs({**LM, "evaluation": {"protocol": "sliding", "window": 128}})[0]
    assert sliding.evaluation.resolved_stride == 64  # half the window, the overlap the old default had
    assert sliding.run_id != spec.run_id
