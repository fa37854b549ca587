"""Zero-shot multiple-choice tasks generated from the Wikipedia wheel's task split.

Four tasks, each item a context and choices scored as continuations (``" " + choice``, lm-eval's
default target delimiter) by :mod:`prunebench.metrics.choice`:

- ``closed_book``: ``Title: <title>\\nShort description:`` -> the article's short description,
  against three descriptions of other articles of the same topic (knowledge).
- ``open_book``: the same question after the lead extract (LLM-KICK's in-context retrieval: the
  answer can be read off the context).
- ``topic``: ``Title: <title>\\nDescription: <description>\\nTopic:`` -> one of the 11 named topics.
  The wheel's twelfth label, ``Uncategorized``, names no topic a reader could infer, so its
  articles make no items and it is no choice.
- ``cloze``: the lead's first sentence without its last word -> that word, against three words of
  the same length class (3-4, 5-6, 7-8, 9-11, 12+ letters) and the same case (capitalized or
  not) drawn from the other items' answers, so neither length nor capitalization gives it away.

Everything is a pure function of the task split: an item's distractors and the order of its
choices come from a random generator seeded with the task and the title (Python's string seeding
is SHA-512 based, independent of ``PYTHONHASHSEED``), and items are ordered by the SHA-256 of
task and title, so a cap on items takes the same pseudo-random sample every time.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from prunebench.data.wikipedia import Article, wikipedia_split
from prunebench.errors import ConfigError, either

TASKS = ("closed_book", "open_book", "topic", "cloze")
CHOICES = 4  # closed_book, open_book and cloze: the answer and three distractors
UNCATEGORIZED = "Uncategorized"
TASK_SEED = 0
MAX_EXTRACT_CHARS = 1000  # open_book's context: the lead cut at a word boundary (its median is 450)

# A sentence ends at ". " + capital after a word of 3+ letters that is no common abbreviation
# (so "Arthur C. Clarke" and "St. Louis" do not end one).
ABBREVIATIONS = frozenset({"etc", "Inc", "Ltd", "Bros", "Corp", "Gen", "Col", "Gov", "Mrs", "Rev", "Sen", "Jan",
                           "Feb", "Mar", "Apr", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "approx", "Fig",
                           "Vol", "est", "lit", "Ave", "Mts", "Mt", "Jr", "Sr", "Dr", "Mr", "St", "vs"})
SENTENCE_END = re.compile(r"(\w+)\.(?=\s+[A-Z\"'(]|\s*$)")
WORD = re.compile(r"[A-Za-z]{3,}")
LENGTH_CLASSES = (3, 5, 7, 9, 12)  # lower bounds of the cloze length classes


@dataclass(frozen=True)
class Item:
    """One multiple-choice question: score each ``" " + choice`` after ``context``."""

    task: str
    id: str  # the article's title: unique within a task
    context: str
    choices: tuple[str, ...]
    gold: int  # index of the right choice


def item_rng(task: str, title: str) -> random.Random:
    return random.Random(f"{TASK_SEED}:{task}:{title}")


def item_order(item: Item) -> str:
    return hashlib.sha256(f"{item.task}:{item.id}".encode()).hexdigest()


def shuffled(rng: random.Random, answer: str, distractors: Sequence[str]) -> tuple[tuple[str, ...], int]:
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return tuple(choices), choices.index(answer)


def description_items(articles: Sequence[Article], *, open_book: bool) -> list[Item]:
    """closed_book / open_book: the description among three of the same topic."""
    task = "open_book" if open_book else "closed_book"
    by_topic: dict[str, list[Article]] = defaultdict(list)
    for a in articles:
        if a.description:
            by_topic[a.topic].append(a)
    items = []
    for group in by_topic.values():
        # distinct descriptions only, case-insensitively (the first spelling by title order)
        distinct: dict[str, str] = {}
        for a in sorted(group, key=lambda a: a.title):
            distinct.setdefault(a.description.casefold(), a.description)
        descriptions = sorted(distinct.values())
        for article in group:
            answer = article.description
            pool = [d for d in descriptions if d.casefold() != answer.casefold()]
            if len(pool) < CHOICES - 1:
                continue
            rng = item_rng(task, article.title)
            choices, gold = shuffled(rng, answer, rng.sample(pool, CHOICES - 1))
            question = f"Title: {article.title}\nShort description:"
            context = f"{lead(article.extract)}\n\n{question}" if open_book else question
            items.append(Item(task, article.title, context, choices, gold))
    return items


def lead(extract: str) -> str:
    """The extract, cut at a word boundary to at most MAX_EXTRACT_CHARS characters."""
    text = " ".join(extract.split())
    if len(text) <= MAX_EXTRACT_CHARS:
        return text
    return text[:MAX_EXTRACT_CHARS].rsplit(" ", 1)[0] + " ..."


def topic_items(articles: Sequence[Article]) -> list[Item]:
    topics = sorted({a.topic for a in articles} - {UNCATEGORIZED})
    items = []
    for article in articles:
        if article.topic == UNCATEGORIZED:
            continue
        rng = item_rng("topic", article.title)
        choices = list(topics)
        rng.shuffle(choices)
        about = f"\nDescription: {article.description}" if article.description else ""
        items.append(Item("topic", article.title, f"Title: {article.title}{about}\nTopic:", tuple(choices),
                          choices.index(article.topic)))
    return items


def first_sentence_cloze(extract: str) -> tuple[str, str] | None:
    """(the first sentence up to its last word, that word), or None where the sentence does not
    end in a plain word of 3+ letters."""
    text = " ".join(extract.split())
    for match in SENTENCE_END.finditer(text):
        word = match.group(1)
        if (len(word) < 3 and word.isalpha()) or word in ABBREVIATIONS:
            continue  # an initial or an abbreviation: the sentence goes on
        if not WORD.fullmatch(word):
            return None  # it ends in a number or a non-ASCII word
        context = text[:match.start(1)].rstrip()
        return (context, word) if context else None
    return None


def length_class(word: str) -> tuple[int, bool]:
    size = max(i for i, low in enumerate(LENGTH_CLASSES) if len(word) >= low)
    return size, word[0].isupper()


def cloze_items(articles: Sequence[Article]) -> list[Item]:
    found = [(a, cut) for a in articles if (cut := first_sentence_cloze(a.extract)) is not None]
    pools: dict[tuple[int, bool], set[str]] = defaultdict(set)
    for _, (_, word) in found:
        pools[length_class(word)].add(word)
    sorted_pools = {key: sorted(words) for key, words in pools.items()}
    items = []
    for article, (context, word) in found:
        pool = [w for w in sorted_pools[length_class(word)] if w.casefold() != word.casefold()]
        if len(pool) < CHOICES - 1:
            continue
        rng = item_rng("cloze", article.title)
        choices, gold = shuffled(rng, word, rng.sample(pool, CHOICES - 1))
        items.append(Item("cloze", article.title, context, choices, gold))
    return items


def generate(task: str, articles: Sequence[Article]) -> list[Item]:
    """The items of ``task`` from ``articles``, in their fixed pseudo-random order."""
    if task not in TASKS:
        raise ConfigError(f"evaluation.tasks: unknown task {task!r}; choose from {either(TASKS)}")
    if task == "topic":
        items = topic_items(articles)
    elif task == "cloze":
        items = cloze_items(articles)
    else:
        items = description_items(articles, open_book=task == "open_book")
    return sorted(items, key=item_order)


@functools.lru_cache(maxsize=len(TASKS))
def task_items(task: str) -> tuple[Item, ...]:
    """Every item of ``task`` from the wheel's task split (read once per process)."""
    return tuple(generate(task, wikipedia_split("tasks")))


def capped(task: str, limit: int | None) -> tuple[Item, ...]:
    """The first ``limit`` items of ``task`` (all with None): the same items in every run."""
    items = task_items(task)
    return items if limit is None else items[:limit]
