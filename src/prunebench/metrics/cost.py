"""What pruning costs: peak memory of a step above what was in use when it started.

On CUDA the allocator's own peak (``torch.cuda.max_memory_allocated``) is exact for tensors; on
the CPU the process's resident set size is sampled every millisecond from a background thread
(plus once at the start and end), after memory malloc kept from earlier frees is handed back
to the OS so that a step reusing it still counts; a spike shorter than a millisecond can be missed. ``method`` says
which one a figure is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from types import TracebackType

import torch

MB = 2**20
SAMPLE_S = 0.001


def resident_bytes() -> int:
    """This process's resident set size (Linux /proc; elsewhere the peak so far, from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_freed_memory() -> None:
    """Hand memory malloc keeps after a free back to the OS (glibc's malloc_trim), so a step that
    reuses it still shows as growth of the resident set. Elsewhere a no-op."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.mb``: the step's peak above its start."""

    def __init__(self, device: str | torch.device) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.method = "cuda-allocator" if self.cuda else "rss-sampled-1ms"
        self.mb = 0.0
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._peak = max(self._peak, resident_bytes())

    @property
    def so_far_mb(self) -> float:
        """The CPU sampler's peak above the start so far (while the step runs)."""
        return max(0, self._peak - self._base) / MB

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            release_freed_memory()  # the base is then what is live, not what malloc kept
            self._base = self._peak = resident_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            peak = max(self._peak, resident_bytes())
        self.mb = max(0, peak - self._base) / MB
