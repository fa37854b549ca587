"""Off a terminal the demo prints its runs' start and end lines, not every epoch of 63 runs."""

from __future__ import annotations

import io
import logging

import pytest

import prunebench.train.progress as epoch_progress
from prunebench.demo import TRAIN_LOGGER, training_lines_off_a_terminal
from prunebench.train import loop


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def info_level() -> object:
    logger = logging.getLogger("prunebench")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(before)


def test_training_lines_are_off_in_a_log_and_on_at_a_terminal(info_level: logging.Logger) -> None:
    assert loop.log.name == epoch_progress.log.name == TRAIN_LOGGER  # the loop's epoch and step lines
    train = logging.getLogger(TRAIN_LOGGER)
    with training_lines_off_a_terminal(io.StringIO()):
        assert not train.isEnabledFor(logging.INFO) and train.isEnabledFor(logging.WARNING)
        assert info_level.isEnabledFor(logging.INFO)  # the runs' own lines stay
    assert train.isEnabledFor(logging.INFO)  # restored
    with training_lines_off_a_terminal(Terminal()):
        assert train.isEnabledFor(logging.INFO)
