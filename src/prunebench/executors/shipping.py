"""Running a job where the results directory cannot be reached: in a scratch folder, files carried.

A :class:`FolderJobFn` is a job function whose jobs read and write files only under one folder
(its ``results_dir``), and which says which of those files a job reads. A worker on another
node runs it in a scratch folder of its own (:func:`run_in_scratch`): the files the job reads
are written there first, the job runs, and the files it made come back with its outcome, for
the driver to write into the results directory (``FolderJobFn.unpack``). The worker never
touches the results directory, so no file system needs to be shared.

Files travel as ``{relative path: bytes}``, with ``/`` as the separator.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from prunebench.executors.base import Outcome, execute

Files = dict[str, bytes]
SCRATCH_PREFIX = "prunebench-run-"  # a scratch folder's name, under the node's temp dir ($TMPDIR)


@runtime_checkable
class FolderJobFn(Protocol):
    """A job function that can run under another folder than the results directory."""

    def __call__(self, job: Any) -> Any:
        """Run ``job``, reading and writing under the results directory."""
        ...

    def inputs(self, job: Any) -> list[str]:
        """The folders, relative to the results directory, whose files ``job`` may read."""
        ...

    def pack(self, folder: str) -> Files:
        """The files under ``folder`` (relative to the results directory) as they are now, less
        those not worth carrying (locks, temp files)."""
        ...

    def moved(self, results_dir: Path) -> FolderJobFn:
        """The same function, reading and writing under ``results_dir`` instead."""
        ...

    def unpack(self, files: Files) -> None:
        """Write a job's files into the results directory (the driver's side)."""
        ...


@dataclass(frozen=True)
class Shipped:
    """What a job run in scratch sends back: its outcome, the files it made and where it ran."""

    outcome: Outcome
    files: Files = field(default_factory=dict)
    host: str = ""
    scratch: str = ""


def checked_path(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside the folder it is joined to, else ValueError."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ValueError(f"refusing a shipped file outside its folder: {name!r}")
    return path


def write_files(root: Path, files: Files) -> None:
    """Write ``files`` under ``root`` (a private scratch folder: no other reader, so no temp files)."""
    for name, payload in files.items():
        path = root.joinpath(*checked_path(name).parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)


def run_in_scratch(fn: FolderJobFn, job: Any, threads: int, *inputs: Files) -> Shipped:
    """Run ``job`` in a new scratch folder under this node's temp dir and return what it made.

    ``inputs`` (each a folder's files, as ``fn.pack`` gave them) are written there first; the
    files that are new or changed when the job ends come back, if it completed. The scratch
    folder is removed after, whatever happened.
    """
    import torch

    torch.set_num_threads(threads)  # a worker process is ours, as a pool worker is
    given: Files = {}
    for files in inputs:
        given.update(files)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    try:
        write_files(scratch, given)
        here = fn.moved(scratch)
        outcome = execute(here, job)
        made: Files = {}
        if outcome.status == "completed":  # what the job wrote: each folder as its function packs it
            for folder in sorted(p.name for p in scratch.iterdir() if p.is_dir()):
                made.update({name: data for name, data in here.pack(folder).items() if given.get(name) != data})
        return Shipped(outcome, made, host=socket.gethostname(), scratch=str(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
