"""The single training loop shared by every stage."""

from prunebench.train.loop import Callback, EpochRecord, TrainLog, build_optimizer, train

__all__ = ["Callback", "EpochRecord", "TrainLog", "build_optimizer", "train"]
