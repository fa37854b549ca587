"""From a YAML file or a mapping to a validated spec and settings: overrides, one-line errors, loading."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prunebench.config_file import parse_value, read_config_file
from prunebench.errors import ConfigError
from prunebench.spec import messages
from prunebench.spec.experiment import ExperimentSpec
from prunebench.spec.settings import SETTINGS_KEYS, RunSettings


def key_suggestion(loc: Sequence[int | str]) -> str:
    """'; did you mean X?' for an unknown key, from the keys of the section it was written in."""
    return messages.key_suggestion(loc, ExperimentSpec, SETTINGS_KEYS)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, 'field.path: message', without pydantic's boilerplate."""
    return messages.describe(exc, ExperimentSpec, SETTINGS_KEYS)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``prune.compression=16`` -> (["prune", "compression"], 16); values parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. prune.compression=16)")
    return key.split("."), parse_value(raw, f"override {key}")  # the key, not a value that may be huge


def set_dotted(data: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """``set_dotted(d, ["prune", "compression"], 16)`` sets ``d["prune"]["compression"]``."""
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


SWEEP_SECTION = "sweep"  # its keys are dotted spec keys (prunebench.plan.sweep)


def deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # plain YAML data only


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Overrides set dotted keys; under ``sweep`` the rest of the key is one dotted sweep key
    (``sweep.prune.compression=[2,8]`` sets the sweep's ``prune.compression`` list)."""
    merged = deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] == SWEEP_SECTION and len(path) > 2:
            if isinstance(merged.get(SWEEP_SECTION), list):
                raise ConfigError(f"override {text!r}: this sweep is a list of grids; override it whole (sweep=[...])")
            path = [SWEEP_SECTION, ".".join(path[1:])]
        set_dotted(merged, path, value)
    return merged


def read_config(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML config as a plain mapping, with ``key=value`` overrides applied."""
    return apply_overrides(read_config_file(Path(path)), overrides)


def build_specs(data: Mapping[str, Any]) -> tuple[ExperimentSpec, RunSettings]:
    """Split a config mapping into the hashed spec and the unhashed settings, validating both."""
    if not isinstance(data, Mapping):
        raise ConfigError("config must be a mapping of keys to values")
    settings_data = {k: v for k, v in data.items() if k in SETTINGS_KEYS}
    spec_data = {k: v for k, v in data.items() if k not in SETTINGS_KEYS}
    try:
        settings = RunSettings(**settings_data)
        spec = ExperimentSpec(**spec_data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    if settings.data_dir is None and os.environ.get("PRUNEBENCH_DATA"):
        settings = settings.replace(data_dir=Path(os.environ["PRUNEBENCH_DATA"]))
    return spec, settings


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ExperimentSpec, RunSettings]:
    """Read a single-run YAML config, apply ``key=value`` overrides, validate."""
    return build_specs(read_config(path, overrides))
