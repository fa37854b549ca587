"""Sweep progress: a live bar on a terminal, plain periodic lines otherwise (CI logs)."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from prunebench.executors.base import Outcome
from prunebench.plan.sweep import Job
from prunebench.train.progress import format_seconds


class SweepProgress:
    """Counts done / failed / remaining and estimates the time left from finished jobs."""

    def __init__(self, total: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        # quiet (-q) means no progress at all; a terminal gets a live bar, logs get lines
        self.quiet = not logging.getLogger("prunebench").isEnabledFor(logging.INFO)
        self.live = not self.quiet and (self.stream.isatty() if live is None else live)
        self._bar: Progress | None = None
        self._restore: tuple[logging.Handler, bool] | None = None
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._task = self._bar.add_task("sweep", total=total, status="")
            # the run in progress: its training's latest line, instead of lines that tear the bar
            self._run_task = self._bar.add_task("", total=None, status="", start=False)
            self._bar.start()
            self._capture_logs()

    def _capture_logs(self) -> None:
        assert self._bar is not None
        bar, task = self._bar, self._run_task

        class ToBar(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                bar.update(task, description=record.getMessage()[:100])

        logger = logging.getLogger("prunebench")
        handler = ToBar(level=logging.INFO)
        logger.addHandler(handler)
        self._restore = (handler, logger.propagate)
        logger.propagate = False

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def eta_seconds(self) -> float | None:
        if not self.finished:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.finished * (self.total - self.finished)

    def summary(self) -> str:
        failed = self.counts["failed"] + self.counts["diverged"]
        eta = self.eta_seconds()
        return (
            f"done {self.counts['completed']}, failed {failed}, remaining {self.total - self.finished}, "
            f"elapsed {format_seconds(time.monotonic() - self.started)}"
            + (f", ETA {format_seconds(eta)}" if eta is not None else "")
        )

    def started_job(self, job: Job) -> None:
        if self._bar is not None:
            self._bar.update(self._run_task, description=f"running {job.describe()}")
        elif not self.quiet:
            print(f"[{self.finished + 1:>{len(str(self.total))}}/{self.total}] start {job.describe()}", file=self.stream, flush=True)

    def finished_job(self, job: Job, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        result = outcome.result
        if result is not None and result.accuracy is None:  # a language model
            detail = f"perplexity {result.perplexity:.3f}"
        else:
            detail = f"top-1 {result.accuracy.top1:.2%}" if result else (outcome.error or "")
        line = f"{outcome.status} {job.describe()}: {detail}"
        if self._bar is not None:
            failed = self.counts["failed"] + self.counts["diverged"]
            self._bar.update(self._task, advance=1, status=f"failed {failed}")
            if outcome.status != "completed":
                self._bar.console.print(line)
        elif not self.quiet:
            print(f"[{self.finished:>{len(str(self.total))}}/{self.total}] {line} | {self.summary()}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._run_task, visible=False)
            self._bar.stop()
        if self._restore is not None:
            handler, propagate = self._restore
            logger = logging.getLogger("prunebench")
            logger.removeHandler(handler)
            logger.propagate = propagate
            self._restore = None
