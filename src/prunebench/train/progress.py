"""Progress inside a long epoch: plain log lines with steps done, throughput, loss and ETA.

An epoch that will take a while gets a line soon after it starts (as soon as its first steps
show it is slow: well within its first tenth), then one every 30 seconds or tenth of the
epoch, whichever comes first; a short epoch gets none, so small runs log one line per epoch
as before. Lines go to the ``prunebench`` logger: the CLI prints them (a live bar shows the
latest), the Python API's caller sees them through ``logging`` like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

log = logging.getLogger("prunebench.train")  # a child of "prunebench": the demo quiets training lines alone

LONG_EPOCH_S = 2.0  # a shorter epoch gets no lines of its own
EVERY_S = 30.0  # the most time between two lines
MIN_GAP_S = 0.5  # the least time between two lines


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochProgress:
    """Call :meth:`step` after every optimizer step of one epoch; it logs when a line is due.

    ``loss_sum`` (the summed loss of the examples seen) is read only when a line is written:
    reading it waits for a GPU to catch up.
    """

    def __init__(self, label: str, steps: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.steps, self.clock = label, steps, clock
        self.started = clock()
        self.last: float | None = None
        self.lines = 0

    def step(self, done: int, seen: int, loss_sum: torch.Tensor) -> None:
        """``done`` steps of the epoch's ``steps`` are finished, on ``seen`` examples."""
        now = self.clock()
        elapsed = now - self.started
        if done >= self.steps or elapsed <= 0:
            return  # the epoch's own line follows
        projected = elapsed / done * self.steps
        if projected < LONG_EPOCH_S:
            return
        gap = max(MIN_GAP_S, min(EVERY_S, projected / 10))
        if self.last is not None and now - self.last < gap:
            return
        self.last = now
        self.lines += 1
        log.info(
            "%s step %d/%d (%d%%)  %.1f ex/s  loss %.4f  epoch ETA %s", self.label, done, self.steps,
            100 * done // self.steps, seen / elapsed, float(loss_sum) / seen, format_seconds(projected - elapsed),
        )
