"""Zero-shot Wikipedia tasks: deterministic generation, lm-eval's log-likelihood scoring
(batched with a shared context, equal to one pair at a time), Wilson intervals, McNemar."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest

from prunebench.data import wikipedia
from prunebench.data.wiki_tasks import (
    TASKS,
    UNCATEGORIZED,
    Item,
    first_sentence_cloze,
    generate,
    length_class,
    task_items,
)
from prunebench.data.wikipedia import Article, split_of
from prunebench.errors import ConfigError
from prunebench.metrics.choice import (
    encode_pair,
    exact_binomial_two_sided,
    judge,
    mcnemar,
    score_items,
    score_items_naive,
    task_accuracy,
    wilson,
)

HAS_WHEEL = importlib.util.find_spec(wikipedia.PACKAGE) is not None
needs_wheel = pytest.mark.skipif(not HAS_WHEEL, reason=f"needs {wikipedia.INSTALL}")

TOPICS = ("Arts", "History", "Mathematics", UNCATEGORIZED)
WORDS = ("river", "stone", "music", "paper", "light", "water", "bread", "cloud", "glass", "field", "horse", "metal",
         "Paris", "Rome", "Berlin", "Madrid", "London", "Vienna", "Prague", "Dublin", "Oslo", "Lisbon", "Athens", "Warsaw")


def articles() -> list[Article]:
    out = []
    for t, topic in enumerate(TOPICS):
        for i in range(6):
            out.append(Article(f"{topic} article {i}", f"The {topic} article {i} is about {WORDS[6 * t + i]}. "
                               f"It has a second sentence.", f"Description {topic} {i}", topic))
    return out


def test_generation_is_deterministic_and_independent_of_input_order() -> None:
    arts = articles()
    for task in TASKS:
        items = generate(task, arts)
        assert items, task
        assert items == generate(task, list(reversed(arts)))
        assert len({i.id for i in items}) == len(items)


def test_items_hold_their_answer_and_distinct_choices() -> None:
    arts = {a.title: a for a in articles()}
    for item in generate("closed_book", list(arts.values())):
        article = arts[item.id]
        assert item.choices[item.gold] == article.description
        assert len(set(item.choices)) == 4
        # distractors are descriptions of the same topic
        same_topic = {a.description for a in arts.values() if a.topic == article.topic}
        assert set(item.choices) <= same_topic
    for item in generate("open_book", list(arts.values())):
        assert arts[item.id].extract in item.context and item.context.endswith("Short description:")
    topic_items = generate("topic", list(arts.values()))
    assert {i.id for i in topic_items} == {a.title for a in arts.values() if a.topic != UNCATEGORIZED}
    for item in topic_items:
        assert item.choices[item.gold] == arts[item.id].topic and UNCATEGORIZED not in item.choices


def test_cloze_cuts_the_first_sentence_and_matches_length_classes() -> None:
    assert first_sentence_cloze("2001 is a film by Arthur C. Clarke. It is long.") == ("2001 is a film by Arthur C.", "Clarke")
    assert first_sentence_cloze("Paris is the capital of France. It is big.") == ("Paris is the capital of", "France")
    assert first_sentence_cloze("It was founded in 1950. Later it grew.") is None  # ends in a number
    arts = articles()
    for item in generate("cloze", arts):
        answer = item.choices[item.gold]
        assert item.context + " " + answer in " ".join(next(a for a in arts if a.title == item.id).extract.split())
        assert {length_class(c) for c in item.choices} == {length_class(answer)}


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ConfigError, match="evaluation.tasks: unknown task 'trivia'"):
        generate("trivia", articles())


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
@needs_wheel
def test_wheel_tasks_come_from_the_task_split_only() -> None:
    counts = {task: len(task_items(task)) for task in TASKS}
    assert sum(counts.values()) >= 2000 and min(counts.values()) >= 500, counts
    # pinned: a change of generation rules shows here
    assert counts == {"closed_book": 2587, "open_book": 2587, "topic": 2394, "cloze": 2407}
    for task in TASKS:
        assert all(split_of(item.id) == "tasks" for item in task_items(task))
    assert task_items("topic")[:5] == tuple(generate("topic", wikipedia.wikipedia_split("tasks"))[:5])


# --- scoring --------------------------------------------------------------------------------


def test_acc_and_acc_norm_by_hand() -> None:
    # acc: -10 > -12 picks "a"; acc_norm: -10/1 < -12/12 picks the long choice, the gold one
    s = judge([-10.0, -12.0], ["a", "bbbbbbbbbbbb"], gold=1)
    assert (s.acc, s.acc_norm, s.acc_bytes) == (False, True, True)
    # characters against bytes: "éé" is 2 characters and 4 bytes
    s = judge([-3.0, -5.0], ["éé", "abcd"], gold=0)
    assert (s.acc, s.acc_norm, s.acc_bytes) == (True, False, True)
    # a tie goes to the first choice, as numpy.argmax (lm-eval) decides it
    assert judge([-1.0, -1.0], ["x", "y"], gold=1).acc is False


def test_encode_pair_moves_trailing_space_to_the_continuation(tiny: tuple[Any, Any]) -> None:
    tok = tiny[0]
    ctx, cont = encode_pair(tok, "To be, or not to be ", "that")
    assert ctx == tok("To be, or not to be")["input_ids"]
    whole = tok("To be, or not to be that")["input_ids"]
    assert cont == whole[len(ctx):]


SMALL_ITEMS = [
    Item("t", "0", "To be, or not to be, that is the", ("question", "answer", "slings and arrows", "sea"), 0),
    Item("t", "1", "whether 'tis nobler ", ("in the mind", "to suffer"), 1),
    Item("t", "2", "Title: X\nTopic:", ("Arts", "History", "People", "Physical sciences and more"), 2),
    Item("t", "3", "a", ("b", "c d e f g"), 1),
    Item("t", "4", "Or to take arms against a sea of troubles", ("and by opposing end them", "é"), 0),
]


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    pytest.importorskip("transformers")
    from lm_tiny import tiny_llama, tiny_tokenizer

    return tiny_tokenizer(), tiny_llama()


@pytest.fixture(scope="module")
def naive_small(tiny: tuple[Any, Any]) -> list[Any]:
    tok, model = tiny
    return score_items_naive(model, tok, SMALL_ITEMS)


@pytest.mark.parametrize("batch_tokens", [1, 40, 4096])
def test_batched_scores_equal_one_pair_at_a_time(batch_tokens: int, tiny: tuple[Any, Any],
                                                  naive_small: list[Any]) -> None:
    tok, model = tiny
    model.train()
    batched = score_items(model, tok, SMALL_ITEMS, batch_tokens=batch_tokens)
    assert model.training  # the mode is restored
    model.eval()
    naive = naive_small
    for b, n in zip(batched, naive):
        assert b.loglikelihoods == pytest.approx(n.loglikelihoods, abs=1e-4)
        assert (b.acc, b.acc_norm, b.acc_bytes) == (n.acc, n.acc_norm, n.acc_bytes)


@pytest.mark.slow  # 5 to 12 s on a loaded 2-core machine: the fast suite stays within 6 minutes
@needs_wheel
def test_batched_equals_naive_on_real_items(tiny: tuple[Any, Any]) -> None:
    from lm_tiny import tiny_llama

    tok, model = tiny[0], tiny_llama(layers=1)
    model.config.max_position_embeddings = 2048  # open_book contexts in byte tokens are long
    items = [item for task in TASKS for item in task_items(task)[:2]]
    batched = score_items(model, tok, items, batch_tokens=2048)
    naive = score_items_naive(model, tok, items)
    for b, n in zip(batched, naive):
        assert b.loglikelihoods == pytest.approx(n.loglikelihoods, rel=1e-5, abs=1e-3)


def test_an_item_longer_than_the_model_is_refused(tiny: tuple[Any, Any]) -> None:
    long = Item("t", "x", "To be, or not to be " * 40, ("question", "sea"), 0)
    with pytest.raises(ConfigError, match="more than the model's 256"):
        score_items(tiny[1], tiny[0], [long])


# --- statistics -----------------------------------------------------------------------------


def test_wilson_interval_matches_published_values() -> None:
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_task_accuracy_counts_items() -> None:
    scores = [judge([-1.0, -2.0], ["a", "b"], gold=g) for g in (0, 0, 0, 1)]
    acc = task_accuracy(scores)
    assert (acc.n, acc.acc, acc.acc_norm) == (4, 0.75, 0.75)
    assert acc.acc_low < 0.75 < acc.acc_high


def test_mcnemar_exact() -> None:
    a = [True] * 10 + [False] * 6 + [True] * 2
    b = [True] * 10 + [True] * 6 + [False] * 2
    test = mcnemar(a, b)
    assert (test.n, test.only_a, test.only_b) == (18, 2, 6)
    # 2 * P(X <= 2), X ~ Binomial(8, 1/2) = 2 * (1 + 8 + 28) / 256
    assert test.p == pytest.approx(2 * 37 / 256)
    assert mcnemar([True, False], [True, False]).p == 1.0
    assert exact_binomial_two_sided(0, 6) == pytest.approx(2 / 64)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_spec_task_names_are_the_generated_tasks() -> None:
    from prunebench.spec.language_model import TASK_NAMES

    assert TASK_NAMES == TASKS


def test_a_model_without_4d_masks_is_scored_pair_by_pair(tiny: tuple[Any, Any], naive_small: list[Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from prunebench.metrics import choice

    tok, model = tiny
    assert choice.takes_4d_masks(model)  # transformers' default attention on a CPU
    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    assert not choice.takes_4d_masks(flash)  # type: ignore[arg-type]
    calls = []
    monkeypatch.setattr(choice, "takes_4d_masks", lambda m: False)
    monkeypatch.setattr(choice, "score_batch", lambda *a: calls.append(a))
    scores = score_items(model, tok, SMALL_ITEMS[:2])
    assert not calls and [s.loglikelihoods for s in scores] == [s.loglikelihoods for s in naive_small[:2]]
