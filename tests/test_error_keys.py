"""Every config key that a message of prunebench names is a key of the config schema."""

from __future__ import annotations

import ast
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import prunebench
from prunebench.spec import ExperimentSpec, RunSettings
from prunebench.pruning import STRATEGIES
from prunebench.pruning.channels import CHANNEL_SCORERS

SOURCE = Path(prunebench.__file__).parent
SECTIONS = ("prune", "train", "finetune", "retrain", "latency", "sweep")
# a section name, not preceded by a word, a dot or a slash (module paths), then dotted names
KEY = re.compile(rf"(?<![\w./-])((?:{'|'.join(SECTIONS)})(?:\.[a-z_][a-z0-9_]*)+)(?![\w(])")
FILE_SUFFIXES = ("bin", "py", "pt", "json", "csv", "gz", "txt", "yaml", "md")  # train.bin is a file, not a key
# Places in a result record, not spec keys ("latency.dense_ms"): test_metric_declarations checks them.
RECORD_PLACES = Path("metrics") / "declared.py"


def string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module, f-strings as their literal parts."""
    tree = ast.parse(path.read_text())
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def strategy_options() -> set[str]:
    names: set[str] = set()
    for registry in (STRATEGIES, CHANNEL_SCORERS):  # weight and channel strategies alike
        for name in registry:
            options = registry.get(name).options_type
            if dataclasses.is_dataclass(options):
                names |= {f.name for f in dataclasses.fields(options)}
    return names


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation admits (``X | None`` -> [X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def resolves(key: str) -> bool:
    """Whether ``key`` (e.g. ``prune.iterative.rate``) names a field of the schema."""
    first, *rest = key.split(".")
    if first == "sweep":  # sweep.<dotted key>: a key of the config it expands
        return not rest or resolves(".".join(rest))
    model: type[BaseModel] | None = ExperimentSpec if first in ExperimentSpec.model_fields else None
    if model is None:
        return False
    parts = [first, *rest]
    for index, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            return False
        field = model.model_fields[part]
        if part == "options" and model.__name__ == "PruneSpec":
            return all(p in strategy_options() for p in parts[index + 1 : index + 2])
        if typing.get_origin(field.annotation) is dict:  # free keys (e.g. layer_rates)
            return True
        nested = _models(field.annotation)
        model = nested[0] if nested else None
        if model is None and index + 1 < len(parts):
            return False
    return True


def named_keys() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if path.relative_to(SOURCE) == RECORD_PLACES:
            continue
        for line, text in string_constants(path):
            for key in KEY.findall(text):
                if key.rsplit(".", 1)[-1] in FILE_SUFFIXES:
                    continue
                found.setdefault(key.rstrip("."), []).append(f"{path.relative_to(SOURCE)}:{line}")
    return found


def test_the_scan_finds_keys_and_the_resolver_tells_real_from_unreal() -> None:
    keys = named_keys()
    # messages that are known to name keys: the scan must see them
    assert {"prune.iterative.rounds", "retrain.rewind_epoch", "prune.score_batches", "train.epochs"} <= set(keys)
    assert "prune.prunable.exclude" in keys and "prune.gradual.frequency" in keys
    for real in ("prune.iterative.layer_rates", "prune.prunable.exclude", "retrain.scratch_epochs", "train.lr"):
        assert resolves(real)
    for unreal in ("prune.batches", "train.slimming_strength", "prune.exclude", "latency.warmup", "latency.threads",
                   "prune.iterative.rate.x", "finetune.lrs"):
        assert not resolves(unreal), unreal
    assert KEY.findall("see prunebench.pruning.prune.py and prune.compression") == ["prune.compression"]


def test_every_key_named_in_a_message_exists_in_the_schema() -> None:
    missing = {key: where for key, where in named_keys().items() if not resolves(key)}
    assert not missing, f"keys named in src/prunebench that the config schema lacks: {missing}"


def test_run_settings_are_not_sections() -> None:
    """``latency`` is a run setting, not a section: its options are latency_batch_size etc."""
    assert "latency" in RunSettings.model_fields and not _models(RunSettings.model_fields["latency"].annotation)
