"""One Ray task per job, on a private local Ray or a cluster (``pip install prunebench[ray]``).

A local Ray (no address) is private to this driver: every server it starts listens on
127.0.0.1 only, and every process it starts ends with the driver (``close`` shuts it down; a
reaper process ends what Ray would leave behind if the driver is killed). A cluster named by
``address`` is joined as it is: its network exposure and authentication are the cluster's.

No file system needs to be shared. A job function that can run elsewhere (a
:class:`~prunebench.executors.shipping.FolderJobFn`, as a sweep's is) runs in a scratch folder
under each node's temp dir: the files it reads (a dense checkpoint) go to the node through Ray's
object store, put there once and shared by every job that reads them, and the files it made
(a run's result.json, mask and model) come back with its outcome; the driver alone writes them
into the results directory, and alone writes the results database. A task whose node or worker
process dies is run again once (``retries``) before its job is recorded as failed.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from prunebench.errors import ConfigError
from prunebench.executors.base import DoneHook, JobFn, Outcome, StartHook, execute
from prunebench.executors.shipping import Files, FolderJobFn, Shipped, run_in_scratch

log = logging.getLogger("prunebench")

LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT_S = 10.0  # a cluster's head answers a TCP connection at once; a dropped packet never does


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor 'ray' needs Ray: pip install 'prunebench[ray]'") from None
    return ray


def ray_log_level() -> int:
    """Ray's own log level: its warnings too are silenced when the command is quiet (``-q`` sets
    the root logger to WARNING), its INFO lines shown otherwise, as before."""
    return logging.ERROR if logging.getLogger().getEffectiveLevel() >= logging.WARNING else logging.INFO


@contextmanager
def _loopback_node(ray: Any) -> Iterator[None]:
    """Let Ray keep 127.0.0.1 as the node address while it starts.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is turned into the machine's routable
    address on Linux, and Ray's servers then bind every interface. Ray keeps the loopback
    address where its single-machine mode is on (its ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read once at import): set for the duration of ``ray.init`` and restored after.
    """
    constants = ray._private.ray_constants
    old = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = old


def _execute_with_threads(fn: JobFn, job: Any, threads: int) -> Outcome:
    import torch

    torch.set_num_threads(threads)  # a Ray worker process is ours, as a pool worker is
    return execute(fn, job)


def check_reachable(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a TCP connection within
    ``timeout_s``: Ray itself retries an address nobody answers for many minutes. Names Ray
    resolves itself (``auto``, ``local``) are left to it."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = (f"no answer within {timeout_s:g} s" if isinstance(exc, TimeoutError)
                  else (exc.strerror or type(exc).__name__).lower())
        raise ConfigError(f"--ray-address {address}: cannot join a Ray cluster: nothing accepts a connection at "
                          f"{host}:{port} ({reason})") from None


@dataclass
class RayExecutor:
    workers: int
    address: str | None = None  # None starts a private local Ray; "auto" or "ray://host:10001" joins one
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0
    retries: int = 1  # a task whose node or worker process died is run again this many times
    name: str = "ray"
    _started: bool = field(default=False, init=False, repr=False)
    _reaper: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def local_device(self) -> bool:
        """A private local Ray runs on this machine; a joined cluster's nodes have their own devices."""
        return self.address is None

    def connect(self) -> None:
        """Join ``address`` or start a private local Ray; a failure to connect is a ConfigError."""
        ray = _ray()
        if ray.is_initialized():
            return  # the caller's own session: used as is, and left running
        if self.address:
            check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level=ray_log_level())
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError...
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"--ray-address {self.address}: cannot join a Ray cluster: {first}") from None
            return
        # A directory of this driver's own (short, under the system temp dir: Ray's unix socket
        # paths must stay short) that every process of this Ray names; the reaper, started before
        # Ray, ends them all and removes it when the driver is done or dies.
        ray_dir = tempfile.mkdtemp(prefix="pb-ray-")
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "prunebench.executors.reaper", str(os.getpid()), ray_dir],
            stdin=subprocess.PIPE, start_new_session=True,
        )
        with _loopback_node(ray):
            ray.init(
                num_cpus=self.workers * self.cpus_per_job, include_dashboard=False,
                log_to_driver=False, _node_ip_address=LOOPBACK, logging_level=ray_log_level(),
                _temp_dir=ray_dir,
            )
        self._started = True

    def run(self, jobs: Sequence[Any], fn: JobFn, on_start: StartHook, on_done: DoneHook) -> None:
        """Run ``jobs``, at most ``workers`` at a time; a :class:`FolderJobFn` runs in each node's
        scratch folder, its files carried both ways (see the module's docstring)."""
        if not jobs:
            return
        ray = _ray()
        self.connect()
        inputs = _Inputs(ray, fn) if isinstance(fn, FolderJobFn) else None  # else: workers share our files
        task = ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job, max_retries=self.retries)(
            _execute_with_threads if inputs is None else run_in_scratch
        )
        queue = list(jobs)
        running: dict[Any, Any] = {}
        while queue or running:
            while queue and len(running) < self.workers:
                job = queue.pop(0)
                on_start(job)
                extra = inputs.refs(job) if inputs is not None else []
                running[task.remote(fn, job, self.cpus_per_job, *extra)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                try:
                    value = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task died (or its node), retries spent
                    outcome = Outcome("failed", error=f"ray task failed: {type(exc).__name__}: {exc}")
                else:
                    outcome = inputs.receive(value) if inputs is not None else value
                on_done(job, outcome)

    def close(self) -> None:
        """Shut down a Ray this executor started; a joined cluster or the caller's session keeps running."""
        if self._started:
            _ray().shutdown()
            self._started = False
        if self._reaper is not None:
            assert self._reaper.stdin is not None
            self._reaper.stdin.close()  # EOF: the reaper ends whatever ray.shutdown left, then exits
            self._reaper.wait(timeout=30)
            self._reaper = None


class _Inputs:
    """The driver's side of a :class:`FolderJobFn`'s files.

    Each folder a job reads is put in Ray's object store once and its reference shared by every
    job that reads it (a dense checkpoint by all the runs that prune it); a folder that a job's
    files change is put again for the jobs after. References live as long as this object: one
    ``run``.
    """

    def __init__(self, ray: Any, fn: FolderJobFn) -> None:
        self.ray, self.fn = ray, fn
        self.folders: dict[str, Any] = {}  # folder -> object reference of its files

    def refs(self, job: Any) -> list[Any]:
        """One argument per folder ``job`` reads: a reference to its files, or ``{}`` where it
        has none (a new run's own folder), which needs no object of its own."""
        args: list[Any] = []
        for folder in self.fn.inputs(job):
            if folder not in self.folders:
                files = self.fn.pack(folder)
                if not files:
                    args.append({})
                    continue
                self.folders[folder] = self.ray.put(files)
            args.append(self.folders[folder])
        return args

    def receive(self, shipped: Shipped) -> Outcome:
        """Write a finished job's files into the results directory; its outcome, or a failure
        naming why the files could not be written."""
        log.debug("a job ended %s in scratch folder %s on %s; %d file(s) came back", shipped.outcome.status,
                  shipped.scratch, shipped.host, len(shipped.files))
        try:
            self.fn.unpack(shipped.files)
        except (OSError, ValueError) as exc:
            return Outcome("failed", error=f"its files could not be written into the results directory: {exc}")
        self.forget(shipped.files)
        return shipped.outcome

    def forget(self, files: Files) -> None:
        """Drop the references of folders that ``files`` changed."""
        for folder in [f for f in self.folders if any(name.startswith(f + "/") for name in files)]:
            del self.folders[folder]
