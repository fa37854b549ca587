"""Sweep progress: plain lines for logs, a live bar on terminals that log lines cannot tear."""

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from prunebench.spec import ExperimentSpec
from prunebench.executors.base import Outcome
from prunebench.plan.progress import SweepProgress
from prunebench.plan.sweep import Job
from prunebench.record import RunResult, read_result

JOB = Job("pruned", ExperimentSpec(dataset="synthetic", model="mlp"))
STORED = read_result(Path(__file__).parent / "data" / "legacy-result.json")


def result(top1: float) -> RunResult:
    return STORED.model_copy(update={"accuracy": STORED.accuracy.model_copy(update={"top1": top1})})


@pytest.fixture(autouse=True)
def _info_logging() -> Iterator[None]:
    logger = logging.getLogger("prunebench")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def test_plain_lines_count_done_failed_remaining_and_eta() -> None:
    stream = io.StringIO()
    progress = SweepProgress(3, stream=stream, live=False)
    progress.started_job(JOB)
    progress.finished_job(JOB, Outcome("completed", result(0.5)))
    progress.finished_job(JOB, Outcome("diverged", error="loss became nan"))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[1/3] start synthetic/mlp magnitude/global 4x seed 0")
    assert "completed" in lines[1] and "top-1 50.00%" in lines[1] and "done 1, failed 0, remaining 2" in lines[1]
    assert "diverged" in lines[2] and "loss became nan" in lines[2] and "done 1, failed 1, remaining 1" in lines[2]
    assert "ETA" in lines[2]


def test_live_bar_takes_over_training_logs_and_gives_them_back() -> None:
    logger = logging.getLogger("prunebench")
    handlers_before, propagate_before = list(logger.handlers), logger.propagate
    stream = io.StringIO()
    progress = SweepProgress(1, stream=stream, live=True)
    assert not logger.propagate  # lines go to the bar's second row, not to stderr
    logger.info("finetune epoch 1/2  loss 0.1")
    progress.finished_job(JOB, Outcome("completed", result(0.9)))
    progress.close()
    assert logger.propagate == propagate_before and logger.handlers == handlers_before
    assert "1/1" in stream.getvalue()


def test_quiet_prints_nothing() -> None:
    logging.getLogger("prunebench").setLevel(logging.WARNING)
    stream = io.StringIO()
    progress = SweepProgress(1, stream=stream, live=None)
    progress.started_job(JOB)
    progress.finished_job(JOB, Outcome("completed", result(0.9)))
    progress.close()
    assert stream.getvalue() == ""
