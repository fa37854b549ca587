"""Errors that mean "the user asked for something we cannot do".

The CLI turns every :class:`PrunebenchError` into a one-line message and exit status 2;
anything else is a bug and keeps its traceback.
"""

from collections.abc import Sequence


class PrunebenchError(Exception):
    """Base class for mistakes in user input (config, names, data files)."""


class ConfigError(PrunebenchError, ValueError):
    """A config value is missing, of the wrong type, or out of range."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup failed; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(PrunebenchError):
    """Data files are missing, corrupt, or cannot be fetched."""


class TrainingDiverged(PrunebenchError):
    """The loss became NaN or infinite during training."""


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM) stopped the work; ``summary`` says what had finished."""

    def __init__(self, signum: int, summary: str = "") -> None:
        super().__init__(signum, summary)
        self.signum = signum
        self.summary = summary


def either(names: Sequence[str]) -> str:
    """Allowed values for a message: ['a'] -> "'a'"; ['a', 'b', 'c'] -> "'a', 'b' or 'c'"."""
    quoted = [repr(n) for n in names]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted) or "none"
