"""Where each artifact lives under a results directory, and when an existing one can be trusted.

Layout::

    prunebench.db                 the results database (store/db.py)
    .prunebench.lock              held by the one `prunebench run` writing here (store/lock.py)
    <run_id>/result.json          the run's RunResult (prunebench.record): metrics, spec, provenance
    <run_id>/mask.pt, model.pt    tensors only (load with weights_only=True)
    <run_id>/rounds/mask_NN.pt    iterative schedules: the mask after round NN
    dense/<dense_id>/model.pt     the dense checkpoint every strategy of that seed prunes
    dense/<dense_id>/dense.json   its accuracy, training log and the SHA-256 of model.pt
    dense/<dense_id>/step_N.pt    weight rewinding: dense weights after N steps

A file that exists is reused only when it is whole: anything else is reported (a warning naming
its path) and rebuilt by running its stage again, so a crash or a planted file never sticks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from prunebench.store.artifacts import load_tensors, load_tensors_with_digest, read_json, sha256_file

log = logging.getLogger("prunebench")

RESULT_FILE = "result.json"
MASK_FILE = "mask.pt"
MODEL_FILE = "model.pt"
DENSE_DIR = "dense"
DENSE_FILE = "dense.json"
# Whether a result's recorded dense_sha256 is still its checkpoint's file (results, report).
DENSE_OK, DENSE_MISMATCH, DENSE_MISSING = "ok", "mismatch", "no checkpoint"


def run_folder(results_dir: Path, run_id: str) -> Path:
    return results_dir / run_id


def dense_folder(results_dir: Path, dense_id: str) -> Path:
    return results_dir / DENSE_DIR / dense_id


def dense_model_path(results_dir: Path, dense_id: str) -> Path:
    return dense_folder(results_dir, dense_id) / MODEL_FILE


def dense_digest(results_dir: Path, dense_id: str, cache: dict[str, str | None] | None = None) -> str | None:
    """SHA-256 of the dense checkpoint's model.pt as it is now, or None when there is none."""
    if cache is not None and dense_id in cache:
        return cache[dense_id]
    path = dense_model_path(results_dir, dense_id)
    digest = sha256_file(path) if path.is_file() else None
    if cache is not None:
        cache[dense_id] = digest
    return digest


def _parsed(path: Path) -> dict[str, Any] | None:
    """``path``'s JSON object, or None (with a warning naming it) when it does not parse."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        log.warning("ignoring %s: not readable JSON (%s); running its stage again", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("ignoring %s: not a JSON object; running its stage again", path)
        return None
    return data


def _loads(path: Path) -> bool:
    try:
        load_tensors(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable tensor file means "not whole"
        log.warning("ignoring %s: not a readable tensor file (%s: %s)", path, type(exc).__name__, exc)
        return False
    return True


def completed_result(
    results_dir: Path, run_id: str, digests: dict[str, str | None] | None = None
) -> dict[str, Any] | None:
    """The stored result of ``run_id`` if its folder holds a whole completed run, else None.

    Whole means: result.json parses, names this run id, mask.pt and model.pt beside it load, and
    the dense weights it records having pruned (``dense_sha256``) are still the checkpoint's file.
    ``digests`` caches the checkpoints' digests across calls.
    """
    folder = run_folder(results_dir, run_id)
    path = folder / RESULT_FILE
    if not path.is_file():
        return None
    result = _parsed(path)
    if result is None:
        return None
    if result.get("run_id") != run_id:
        log.warning("ignoring %s: it names run %r, not %s; running it again", path, result.get("run_id"), run_id)
        return None
    missing = [name for name in (MASK_FILE, MODEL_FILE) if not (folder / name).is_file()]
    if missing:
        log.warning("ignoring %s: %s missing beside it; running it again", path, " and ".join(missing))
        return None
    if not all(_loads(folder / name) for name in (MASK_FILE, MODEL_FILE)):
        log.warning("ignoring %s: its tensors do not load; running it again", path)
        return None
    recorded = result.get("dense_sha256")
    if recorded is not None and dense_digest(results_dir, str(result.get("dense_id")), digests) != recorded:
        log.warning("ignoring %s: it was pruned from dense weights that are no longer %s; running it again",
                    path, dense_model_path(results_dir, str(result.get("dense_id"))))
        return None
    return result


def completed_dense(results_dir: Path, dense_id: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The dense checkpoint's weights and dense.json if both are whole, else None.

    ``info["model_sha256"]`` is the digest of the bytes just loaded, so whatever is paired with
    these weights can name exactly them. A dense.json that records another digest than its
    model.pt has means the file was replaced after the fact: not trusted.
    """
    folder = dense_folder(results_dir, dense_id)
    info_path, model_path = folder / DENSE_FILE, folder / MODEL_FILE
    if not info_path.is_file():
        if model_path.is_file():
            log.info("dense checkpoint %s has no %s (interrupted); training it again", folder, DENSE_FILE)
        return None
    info = _parsed(info_path)
    if info is None:
        return None
    if not model_path.is_file():
        log.warning("ignoring %s: %s missing beside it; training the dense model again", info_path, MODEL_FILE)
        return None
    try:
        state, digest = load_tensors_with_digest(model_path)
    except Exception as exc:  # noqa: BLE001 - empty, truncated or foreign: retrain rather than fail forever
        log.warning("ignoring %s: not a readable tensor file (%s: %s); training the dense model again",
                    model_path, type(exc).__name__, exc)
        return None
    recorded = info.get("model_sha256")
    if recorded is not None and recorded != digest:
        log.warning("ignoring %s: its SHA-256 %s differs from the %s recorded in %s; training the dense model again",
                    model_path, digest[:12], str(recorded)[:12], info_path)
        return None
    info["model_sha256"] = digest  # older checkpoints recorded none: the digest of what was loaded
    return state, info
