"""The job function every executor runs: a sweep's dense and pruned jobs, dispatched by kind."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from prunebench.spec import RunSettings
from prunebench.executors.shipping import Files, checked_path
from prunebench.experiment.baseline import run_dense
from prunebench.experiment.lm import run_lm_dense, run_lm_experiment
from prunebench.experiment.pipeline import run_experiment
from prunebench.plan.sweep import Job
from prunebench.plugins import load_plugins
from prunebench.record import RunResult
from prunebench.store.files import TEMP_NAME, write_atomic
from prunebench.store.layout import DENSE_DIR, DENSE_FILE, RESULT_FILE
from prunebench.store.lock import LOCK_FILE

# Written last in their folders: their presence marks a run, or a dense checkpoint, done.
MARKERS = (RESULT_FILE, DENSE_FILE)


def run_job(job: Job, settings: RunSettings, results_dir: Path) -> RunResult:
    """Run one job and return its record; the caller's torch thread count is left as it was."""
    load_plugins(settings.plugins)  # a spawned or remote worker has not imported them yet
    if job.spec.is_lm:
        run = run_lm_dense if job.kind == "dense" else run_lm_experiment
    else:
        run = run_dense if job.kind == "dense" else run_experiment
    return run(job.spec, settings, results_dir)


def carried(name: str) -> bool:
    """Whether a file is a result worth carrying: not a lock, not a writer's temp file."""
    base = PurePosixPath(name).name
    return base != LOCK_FILE and TEMP_NAME.fullmatch(base) is None


@dataclass(frozen=True)
class JobFunction:
    """``run_job`` with the settings and the results directory bound: picklable, so every
    executor's workers can run it.

    It is also an :class:`~prunebench.executors.shipping.FolderJobFn`: a job reads its dense
    checkpoint's folder and its own run folder (a whole stored run is reused), and writes only
    under the results directory, so a worker that cannot reach that directory runs it in a
    scratch folder and the driver writes what it made (:meth:`unpack`).
    """

    settings: RunSettings
    results_dir: Path

    def __call__(self, job: Job) -> RunResult:
        return run_job(job, self.settings, self.results_dir)

    def inputs(self, job: Job) -> list[str]:
        dense = f"{DENSE_DIR}/{job.spec.dense_spec().content_hash()}"
        return [dense, job.run_id] if job.kind == "pruned" else [dense]

    def pack(self, folder: str) -> Files:
        root = self.results_dir.joinpath(*checked_path(folder).parts)
        if not root.is_dir():
            return {}
        files: Files = {}
        for path in sorted(root.rglob("*")):
            name = path.relative_to(self.results_dir).as_posix()
            if path.is_file() and not path.is_symlink() and carried(name):
                files[name] = path.read_bytes()
        return files

    def moved(self, results_dir: Path) -> JobFunction:
        return dataclasses.replace(self, results_dir=results_dir)

    def unpack(self, files: Files) -> None:
        """Write ``files`` atomically, each folder's marker (result.json, dense.json) last; a
        marker being replaced is removed first, so a driver killed halfway leaves a folder that
        reads as unfinished (and is run again), never an old marker beside new files."""
        names = [name for name in files if carried(name)]
        paths = {name: self.results_dir.joinpath(*checked_path(name).parts) for name in names}  # all checked first
        markers = [name for name in names if PurePosixPath(name).name in MARKERS]
        for name in markers:
            paths[name].unlink(missing_ok=True)
        for name in sorted(names, key=lambda n: n in markers):
            write_atomic(paths[name], files[name])


def job_function(settings: RunSettings, results_dir: Path) -> JobFunction:
    """The job function of a plan. The results directory is made absolute: a worker may start elsewhere."""
    return JobFunction(settings, results_dir.resolve())
