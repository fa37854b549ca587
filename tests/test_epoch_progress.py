"""Progress inside an epoch: steps done, throughput, loss and ETA, soon after a slow epoch starts."""

from __future__ import annotations

import logging
import re
import time

import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.train.progress import EpochProgress

LINE = re.compile(r"^train epoch 1/1 step (\d+)/(\d+) \((\d+)%\)  [\d.]+ ex/s  loss [\d.]+  epoch ETA \d+:\d\d$")


class SlowModel(nn.Module):
    """A linear model whose every forward pass takes ``seconds``: an epoch long enough to watch."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.linear(x)


def test_a_slow_epoch_reports_progress_within_its_first_tenth(caplog: pytest.LogCaptureFixture) -> None:
    """Through the Python API: its lines go to the `prunebench` logger, like the CLI's."""
    x, y = torch.randn(240, 4), torch.randint(0, 2, (240,))
    data = pb.DataSplits.from_tensors(train=(x[:220], y[:220]), test=(x[220:], y[220:]), val_fraction=0.0)
    with caplog.at_level(logging.INFO, logger="prunebench"):
        pb.fit(SlowModel(0.03), data, epochs=1, batch_size=2, lr=0.01)  # 110 steps, about 3.3 s
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    first = LINE.match(lines[0])
    assert first, lines[0]
    done, total = int(first.group(1)), int(first.group(2))
    assert total == 110 and done <= total // 10  # within the first 10% of the epoch
    assert 2 <= len(lines) <= 12  # then about every tenth, not every step
    assert [int(LINE.match(line).group(1)) for line in lines] == sorted(int(LINE.match(line).group(1)) for line in lines)
    assert caplog.records[-1].getMessage().startswith("train epoch 1/1  lr")  # the epoch's own line still ends it


def test_line_timing_follows_the_epoch_length(caplog: pytest.LogCaptureFixture) -> None:
    """A simulated clock: a 1000-step epoch of 1 s steps gets a line at once, then one per 30 s;
    a 0.1 s epoch gets none."""
    def lines_for(steps: int, step_s: float) -> list[str]:
        now = [0.0]
        progress = EpochProgress("dense epoch 1/1", steps, clock=lambda: now[0])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="prunebench"):
            for done in range(1, steps + 1):
                now[0] += step_s
                progress.step(done, done * 8, torch.tensor(0.5 * done * 8))
        return [r.getMessage() for r in caplog.records]

    long = lines_for(1000, 1.0)
    assert long[0].startswith("dense epoch 1/1 step 1/1000 (0%)  8.0 ex/s  loss 0.5000  epoch ETA 16:39")
    assert 30 <= len(long) <= 35  # every 30 s of a 1000 s epoch
    assert lines_for(100, 0.001) == []
