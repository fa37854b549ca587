"""Inputs read on demand from files, for datasets larger than memory.

A :class:`Stream` stands where a dataset's input tensor would, as :class:`~prunebench.data.pixels.Pixels`
does: indexing it returns a float32 batch, :meth:`Stream.take` selects examples (a validation
split, a subset) without reading any. Behind it is a map-style source (``source[i]`` is one
example's (C, H, W) tensor; any :class:`torch.utils.data.Dataset` of tensors): an image folder
decodes one file per example, and a registered dataset may return its own.

Training and evaluation read whole epochs through :func:`batches`, the one place batches are
fetched: from memory it slices tensors; from a stream a :class:`torch.utils.data.DataLoader`
decodes the very batches the in-memory path would slice (the run's seeded order, batch for
batch) in ``workers`` processes, so both paths train on the same bits.

uint8 examples are scaled to [0, 1] and standardized by the training set's per-channel mean and
std (computed over the training files in one streamed pass, chunk by chunk exactly as in memory);
float examples are used as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from prunebench.data.pixels import Pixels, channel_stats, standardize, stats_chunk
from prunebench.errors import PrunebenchError


@dataclass(frozen=True, eq=False)
class Stream:
    """``source``'s examples at ``index`` (None: all), read on demand and returned on ``device``.

    ``mean``/``std`` (1, C, 1, 1) float32: how uint8 examples are standardized (None: scaled to
    [0, 1] only). ``workers``: processes that decode batches read through :func:`batches`.
    """

    source: Dataset[torch.Tensor]
    example_shape: tuple[int, ...]
    example_dtype: torch.dtype
    index: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")
    workers: int = 0

    @classmethod
    def of(cls, source: Dataset[torch.Tensor], workers: int = 0) -> Stream:
        """A stream over every example of ``source`` (its first example is read for the shape)."""
        first = source[0]
        if not isinstance(first, torch.Tensor):
            raise TypeError(f"a stream's source returns one tensor per example, not {type(first).__name__}")
        return cls(source, tuple(first.shape), first.dtype, workers=workers)

    def __len__(self) -> int:
        return len(self.source) if self.index is None else self.index.shape[0]  # type: ignore[arg-type]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.example_shape))

    @property
    def ndim(self) -> int:
        return 1 + len(self.example_shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.example_dtype == torch.uint8 else self.example_dtype

    @property
    def nbytes(self) -> int:
        """Bytes held in memory for the images: none, they stay in their files."""
        return 0

    def rows(self, key: Any) -> list[int]:
        """Indices into ``source`` of the examples ``key`` (an int, slice or index tensor) selects."""
        if isinstance(key, slice):
            key = torch.arange(len(self))[key]
        elif isinstance(key, int):
            key = torch.tensor([key])
        key = torch.as_tensor(key).cpu().reshape(-1)
        return (key if self.index is None else self.index[key]).tolist()

    def finish(self, examples: torch.Tensor) -> torch.Tensor:
        """A batch as read from ``source``, on this stream's device and standardized."""
        examples = examples.to(self.device)
        if self.example_dtype != torch.uint8:
            return examples
        if self.mean is None or self.std is None:
            return examples.to(torch.float32) / 255.0
        return standardize(examples, self.mean.to(self.device), self.std.to(self.device))

    def __getitem__(self, key: Any) -> torch.Tensor:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):  # x[0, 0]: the examples first, then the rest on their floats
            key, rest = key[0], key[1:]
        batch = self.finish(stack([self.source[i] for i in self.rows(key)]))
        if isinstance(key, int):
            batch = batch[0]
        return batch[rest] if rest else batch

    def read(self, keys: Iterable[Any]) -> Iterator[torch.Tensor]:
        """The batches ``keys`` select, in order, decoded by ``workers`` processes (0: this one)."""
        rows = [self.rows(key) for key in keys]
        if self.workers == 0:
            for batch in rows:
                yield self.finish(stack([self.source[i] for i in batch]))
            return
        loader = DataLoader(
            self.source, batch_sampler=rows, num_workers=self.workers, collate_fn=stack,
            pin_memory=self.device.type == "cuda",
        )
        try:
            for examples in loader:
                yield self.finish(examples)
        except PrunebenchError as exc:  # e.g. a file a worker could not decode: its own one line
            raise type(exc)(worker_message(exc)) from None

    def take(self, index: torch.Tensor) -> Stream:
        """The examples at ``index`` (into this view); nothing is read."""
        index = index.cpu()
        return replace(self, index=index if self.index is None else self.index[index])

    def to(self, device: torch.device | str) -> Stream:
        return replace(self, device=torch.device(device))

    def with_workers(self, workers: int) -> Stream:
        return replace(self, workers=workers)

    def standardized(self, mean: torch.Tensor, std: torch.Tensor) -> Stream:
        return replace(self, mean=mean.reshape(1, -1, 1, 1).float(), std=std.reshape(1, -1, 1, 1).float())

    def raw_chunks(self) -> Iterator[torch.Tensor]:
        """Every example as read from ``source`` (uint8 stays uint8), in order, in the chunks the
        statistics are summed in."""
        size = stats_chunk(self.example_shape)
        keys = [slice(start, start + size) for start in range(0, len(self), size)]
        plain = replace(self, example_dtype=torch.float32, device=torch.device("cpu"))  # finish() passes them through
        yield from plain.read(keys)

    def float(self) -> torch.Tensor:
        return self[:]


def worker_message(exc: Exception) -> str:
    """The message of an exception a DataLoader worker raised.

    torch re-raises it in this process with the worker's whole traceback as its message, the
    original ``module.Type: message`` as the last line.
    """
    lines = str(exc).strip().splitlines()
    if len(lines) < 2:
        return str(exc)
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    last = lines[-1]
    return last[len(prefix):] if last.startswith(prefix) else last


def stack(examples: Sequence[torch.Tensor]) -> torch.Tensor:
    """A batch from its examples (the DataLoader's collate function: module-level, so it pickles)."""
    return torch.stack(list(examples))


def read_all(stream: Stream) -> torch.Tensor:
    """Every example of ``stream`` as read from its source, into one preallocated tensor."""
    out = torch.empty((len(stream), *stream.example_shape), dtype=stream.example_dtype)
    filled = 0
    for chunk in stream.raw_chunks():
        out[filled : filled + chunk.shape[0]] = chunk
        filled += chunk.shape[0]
    return out


def in_memory(train: Stream, *others: Stream) -> list[torch.Tensor] | list[Pixels]:
    """Every example read once into memory: uint8 as :class:`Pixels` standardized by ``train``
    (the in-memory path), float as one tensor."""
    if train.example_dtype != torch.uint8:
        return [read_all(s) for s in (train, *others)]
    return Pixels.standardized_by(*(read_all(s) for s in (train, *others)))


def streamed(train: Stream, *others: Stream) -> list[Stream]:
    """The streams, uint8 ones standardized by ``train``'s statistics (one streamed pass over it)."""
    if train.example_dtype != torch.uint8:
        return [train, *others]
    mean, std = channel_stats(train.raw_chunks())
    return [s.standardized(mean, std) for s in (train, *others)]


def batches(x: torch.Tensor | Pixels | Stream, y: torch.Tensor, keys: Iterable[Any]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) of each batch ``keys`` selects (index tensors or slices), in order: sliced
    from memory, or decoded by a stream's workers."""
    if isinstance(x, Stream):
        keys = list(keys)
        yield from zip(x.read(keys), (y[key] for key in keys))
        return
    for key in keys:
        yield x[key], y[key]


__all__ = ["Stream", "batches", "in_memory", "streamed"]
