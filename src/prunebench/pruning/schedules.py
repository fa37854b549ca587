"""Pruning schedules as pure functions of the step: how many entries to keep, and when.

- ``one-shot``: prune once, after dense training, to the target.
- ``iterative``: rounds of prune -> retrain; round r keeps round(n * (1 - rate) ** r) of a
  tensor's (or the model's) n entries (Han et al. 2015; Frankle & Carbin 2019). The closed
  form keeps rounding from piling up over rounds: the ladder is exact.
- ``gradual``: during training the sparsity follows Zhu & Gupta (2017)
  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3, masks updated every dt steps.
- ``at-init``: prune the freshly initialized network once, then train it.

Nothing here touches a model; the registered schedules (``prunebench.experiment.schedules``)
call these functions and do the pruning and training.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass


def iterative_keep(total: int, rate: float, round_index: int) -> int:
    """Entries kept after ``round_index`` rounds that each remove ``rate`` of what remains."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    return round(total * (1.0 - rate) ** round_index)


def iterative_ladder(total: int, rate: float, rounds: int) -> list[int]:
    """Keep counts after rounds 1..``rounds``."""
    return [iterative_keep(total, rate, r) for r in range(1, rounds + 1)]


def ladder_to_target(total: int, rate: float, target: int) -> list[int]:
    """Keep counts of rounds removing ``rate`` of what remains until ``target``; the last is exact.

    The last round may remove less than ``rate``: it stops at the target rather than past it.
    """
    if target >= total:
        return [total]
    counts = []
    r = 1
    while (keep := iterative_keep(total, rate, r)) > target:
        counts.append(keep)
        r += 1
    counts.append(target)
    return counts


def layer_rate(name: str, rate: float, layer_rates: Mapping[str, float]) -> float:
    """The per-round rate of parameter ``name``: the first matching glob pattern, else ``rate``."""
    for pattern, value in layer_rates.items():
        if fnmatch.fnmatchcase(name, pattern):
            return value
    return rate


def layer_ladder(
    sizes: Mapping[str, int], rate: float, layer_rates: Mapping[str, float], rounds: int
) -> list[dict[str, int]]:
    """Per-parameter keep counts after rounds 1..``rounds``, each layer at its own rate."""
    return [
        {name: iterative_keep(n, layer_rate(name, rate, layer_rates), r) for name, n in sizes.items()}
        for r in range(1, rounds + 1)
    ]


def cubic_sparsity(step: int, initial: float, final: float, start: int, frequency: int, count: int) -> float:
    """Zhu & Gupta's s_t at ``step``: s_i at t0, cubic in between, s_f from t0 + n*dt on.

    ``start`` is t0, ``frequency`` is dt and ``count`` is n. Before t0 nothing is pruned. The
    mask only changes at update steps (:func:`is_update_step`), where this value is reached.
    """
    if step < start:
        return 0.0
    progress = min((step - start) / (count * frequency), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def cubic_keep(step: int, total: int, final_keep: int, initial: float, start: int, frequency: int, count: int) -> int:
    """Entries to keep at ``step`` so that the last update lands exactly on ``final_keep``."""
    if step < start:
        return total
    initial_keep = round(total * (1.0 - initial))
    progress = min((step - start) / (count * frequency), 1.0)
    return final_keep + round((initial_keep - final_keep) * (1.0 - progress) ** 3)


def update_steps(start: int, frequency: int, count: int) -> list[int]:
    """The steps t0, t0 + dt, ..., t0 + n*dt at which a gradual schedule updates the mask."""
    return [start + i * frequency for i in range(count + 1)]


def is_update_step(step: int, start: int, frequency: int, count: int) -> bool:
    return start <= step <= start + count * frequency and (step - start) % frequency == 0


@dataclass(frozen=True)
class CubicSchedule:
    """The gradual schedule as a function of the optimizer step: ``target_at(step)`` is the
    number of entries to keep, ``is_update(step)`` whether the mask changes at that step."""

    total: int
    final_keep: int
    initial_sparsity: float
    start: int  # t0
    frequency: int  # dt
    count: int  # n

    def target_at(self, step: int) -> int:
        return cubic_keep(step, self.total, self.final_keep, self.initial_sparsity, self.start, self.frequency, self.count)

    def is_update(self, step: int) -> bool:
        return is_update_step(step, self.start, self.frequency, self.count)

    def update_steps(self) -> list[int]:
        return update_steps(self.start, self.frequency, self.count)
