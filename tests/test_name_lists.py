"""The lists of names in README.md and docs/ equal the registries, so they cannot drift again.

Each list is read from where a reader meets it: the comments of README's ``prunebench list``
lines, and the allowed values of docs/config.md's keys. A registered name a list omits, or a
listed name nothing registers, fails with the file and the difference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prunebench.catalog import RETRAIN_MODES, SCHEDULES
from prunebench.data import DATASETS
from prunebench.models import MODELS
from prunebench.pruning.channels import CHANNEL_SCORERS
from prunebench.pruning.scores import STRATEGIES, WEIGHT_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONFIG_DOC = ROOT / "docs" / "config.md"
NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")


def weight_strategies() -> set[str]:
    """Strategies that score the weights of classifiers (a language-model-only one scores none)."""
    return set(WEIGHT_STRATEGIES.names())


def lm_only_strategies() -> set[str]:
    return set(STRATEGIES.names()) - weight_strategies() - set(CHANNEL_SCORERS.names())


def lm_strategies() -> set[str]:
    return {n for n in STRATEGIES.names() if STRATEGIES.get(n).prunes("language_model")}


def readme_list(what: str) -> dict[str, list[str]]:
    """The names in the comment of README's ``prunebench list <what>`` line (and comment lines
    right under it), by label: ``channel: a, b`` is under ``channel``, unlabelled ones under ``""``."""
    lines = README.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if re.match(rf"prunebench list {what}\s+#", line)]
    comment = lines[start].split("#", 1)[1]
    for line in lines[start + 1:]:
        if not line.lstrip().startswith("#"):
            break
        comment += " " + line.split("#", 1)[1]
    comment = re.sub(r"\([^)]*\)", "", comment)  # a parenthetical describes, it lists nothing
    found: dict[str, list[str]] = {}
    for part in comment.split(";"):
        label, _, names = part.rpartition(":")
        found[label.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return found


def config_doc_names(key: str) -> list[str]:
    """The backticked names in the 'meaning' cell of docs/config.md's row for ``key``."""
    rows = [line for line in CONFIG_DOC.read_text().splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"docs/config.md has {len(rows)} rows for {key}"
    meaning = rows[0].split("|")[3]
    return [n for n in re.findall(r"`([^`]*)`", meaning) if NAME.fullmatch(n)]


def exactly(listed: list[str], registered: set[str], where: str) -> None:
    assert len(listed) == len(set(listed)), f"{where} lists a name twice: {listed}"
    missing, unknown = sorted(registered - set(listed)), sorted(set(listed) - registered)
    assert not missing and not unknown, f"{where}: missing {missing}, not registered {unknown}"


def test_readme_lists_every_strategy_under_its_kind() -> None:
    listed = readme_list("strategies")
    assert set(listed) == {"", "language models only", "channel"}, listed
    exactly(listed[""], weight_strategies(), "README strategies")
    exactly(listed["language models only"], lm_only_strategies(), "README language-model strategies")
    exactly(listed["channel"], set(CHANNEL_SCORERS.names()), "README channel strategies")


@pytest.mark.parametrize(("what", "registry"), [
    ("models", MODELS), ("datasets", DATASETS), ("schedules", SCHEDULES), ("retrain-modes", RETRAIN_MODES)])
def test_readme_lists_every_registered_name(what: str, registry: object) -> None:
    listed = readme_list(what)
    assert list(listed) == [""], f"README {what}: unexpected labels {list(listed)}"
    exactly(listed[""], set(registry.names()), f"README {what}")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("key", "registry"), [
    ("model", MODELS), ("dataset", DATASETS), ("prune.schedule", SCHEDULES), ("retrain.mode", RETRAIN_MODES)])
def test_config_doc_lists_every_registered_name(key: str, registry: object) -> None:
    exactly(config_doc_names(key), set(registry.names()), f"docs/config.md {key}")  # type: ignore[attr-defined]


def test_config_doc_lists_every_strategy() -> None:
    exactly(config_doc_names("prune.strategy"), weight_strategies() | set(CHANNEL_SCORERS.names()),
            "docs/config.md prune.strategy")
    text = CONFIG_DOC.read_text()
    lm_line = re.search(r"`prune\.strategy` \(([^)]*)\)", text)
    assert lm_line is not None, "docs/config.md: the language-model section lists no prune.strategy"
    exactly(re.findall(r"`([^`]*)`", lm_line.group(1)), lm_strategies(), "docs/config.md language-model strategies")


def test_a_drifted_list_is_reported_with_the_difference() -> None:
    with pytest.raises(AssertionError, match=r"missing \['b'\], not registered \['c'\]"):
        exactly(["a", "c"], {"a", "b"}, "here")
    with pytest.raises(AssertionError, match="twice"):
        exactly(["a", "a"], {"a"}, "here")


METHODS_DOC = ROOT / "docs" / "methods.md"


def structures_table() -> list[list[str]]:
    """The cells of the rows of docs/methods.md's table under "## Structures"."""
    text = METHODS_DOC.read_text().split("## Structures (`prune.structure`)", 1)[1]
    rows = [line for line in text.split("\n\n", 2)[1].splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_methods_doc_lists_every_structure_as_it_declares_itself() -> None:
    """One row per registered structure (its values parse to it), naming each target it accepts
    and saying what prune.prunable.exclude keeps as the structure declares it."""
    from prunebench.pruning.structures import STRUCTURES, parse_structure

    listed = []
    for value, _, target, exclude in structures_table():
        kinds = set()
        for text in re.findall(r"`([^`]*)`", value):
            try:
                kinds.add(parse_structure(text.strip('"')).kind)
            except ValueError:
                continue  # a pattern such as "N:M", not a value
        assert len(kinds) == 1, f"docs/methods.md structures row {value!r} names {kinds}"
        (kind,) = kinds
        listed.append(kind)
        cls = STRUCTURES.get(kind)
        for accepted in cls.target_kinds:
            assert f"`prune.{accepted}`" in target, f"docs/methods.md: {kind} accepts prune.{accepted}"
        assert exclude == cls.exclude, f"docs/methods.md: {kind}'s prune.prunable.exclude"
    exactly(listed, set(STRUCTURES.names()), "docs/methods.md structures")


def test_config_doc_lists_every_allocation() -> None:
    from prunebench.pruning.allocations import ALLOCATIONS

    exactly(config_doc_names("prune.allocation"), set(ALLOCATIONS.names()), "docs/config.md prune.allocation")
