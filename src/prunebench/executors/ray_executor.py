"""One Ray task per job, on a private local Ray or a cluster (``pip install prunebench[ray]``).

A local Ray (no address) is private to this driver: every server it starts listens on
127.0.0.1 only, and every process it starts ends with the driver (``close`` shuts it down; a
reaper process ends what Ray would leave behind if the driver is killed). A cluster named by
``address`` is joined as it is: its network exposure and authentication are the cluster's.

The results directory must be reachable at the same path from every node (a shared file
system); the driver alone writes the results database.
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
        if not jobs:
            return
        ray = _ray()
        self.connect()
        task = ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job)(_execute_with_threads)
        queue = list(jobs)
        running: dict[Any, Any] = {}
        while queue or running:
            while queue and len(running) < self.workers:
                job = queue.pop(0)
                on_start(job)
                running[task.remote(fn, job, self.cpus_per_job)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task or its node died
                    outcome = Outcome("failed", error=f"ray task failed: {type(exc).__name__}: {exc}")
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

