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
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunebench.store.artifacts import load_tensors, load_tensors_with_digest, read_json, sha256_file

if TYPE_CHECKING:
    import torch

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


def completed_result(
    results_dir: Path, run_id: str, digests: dict[str, str | None] | None = None
) -> dict[str, Any] | None:
    """The stored result of ``run_id`` if its folder holds a whole completed run, else None.

    Whole means: result.json parses, names this run id, mask.pt and model.pt beside it load and
    agree with the sizes it records (:func:`sizes_disagree`), and it records the dense weights it
    pruned (``dense_sha256``; a language model's ``pretrained_sha256``), which are still the
    checkpoint's file.
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
    try:
        mask, model = load_tensors(folder / MASK_FILE), load_tensors(folder / MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 - any unreadable tensor file means "not whole"
        log.warning("ignoring %s: its tensors do not load (%s: %s); running it again", path, type(exc).__name__, exc)
        return None
    disagreement = sizes_disagree(result, mask, model)
    if disagreement:
        log.warning("ignoring %s: %s; running it again", path, disagreement)
        return None
    language_model = result.get("language_model")
    recorded = result.get("dense_sha256")
    if recorded is None and not (isinstance(language_model, dict) and language_model.get("pretrained_sha256")):
        log.warning("ignoring %s: it records no digest of the dense weights it pruned; running it again", path)
        return None
    if recorded is not None and dense_digest(results_dir, str(result.get("dense_id")), digests) != recorded:
        log.warning("ignoring %s: it was pruned from dense weights that are no longer %s; running it again",
                    path, dense_model_path(results_dir, str(result.get("dense_id"))))
        return None
    return result


def sizes_disagree(result: dict[str, Any], mask: Any, model: Any) -> str | None:
    """Why the counts ``result`` records cannot be those of the tensors beside it, or None.

    The counts must agree with each other (the ratios and sparsity are computed from them), the
    weights mask.pt prunes must be zero in model.pt, and what the tensors prove bounds them:
    every nonzero weight of a masked layer is a nonzero (prunable) parameter, every mask entry a
    prunable one, and a classifier's model.pt holds every parameter (a language model's may hold
    only its pruned layers). A result edited to claim more compression than its weights have
    fails one of these.
    """
    sizes = result.get("sizes")
    if not isinstance(sizes, dict) or not isinstance(mask, dict) or not isinstance(model, dict):
        return "it records no sizes to check against mask.pt and model.pt"
    try:
        total, nonzero = int(sizes["params_total"]), int(sizes["params_nonzero"])
        prunable, prunable_nonzero = int(sizes["prunable_total"]), int(sizes["prunable_nonzero"])
        ratios = [(float(sizes["compression_ratio"]), total / max(nonzero, 1)),
                  (float(sizes["prunable_compression_ratio"]), prunable / max(prunable_nonzero, 1)),
                  (float(sizes["sparsity"]), 1.0 - prunable_nonzero / prunable if prunable else 0.0)]
    except (KeyError, TypeError, ValueError):
        return "its sizes are incomplete"
    if any(not math.isclose(recorded, computed, rel_tol=1e-9, abs_tol=1e-12) for recorded, computed in ratios):
        return "its compression ratios or sparsity are not those of its own parameter counts"
    import torch  # here, not at the top: readers of the layout's names (`prunebench results`) need no torch

    kept = 0
    entries = 0
    for name, keep in mask.items():
        weights = model.get(name)
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or not isinstance(weights, torch.Tensor) \
                or weights.shape != keep.shape:
            return f"mask.pt's {name!r} has no weights of its shape in model.pt"
        if torch.count_nonzero(weights[~keep]):
            return f"model.pt's {name!r} has nonzero weights where mask.pt prunes them"
        kept += int(torch.count_nonzero(weights))
        entries += keep.numel()
    if prunable_nonzero < kept or nonzero < kept or prunable < entries:
        return f"it records {prunable_nonzero} nonzero prunable weights, but model.pt's masked layers hold {kept}"
    if result.get("language_model") is None:
        stored = sum(t.numel() for t in model.values() if isinstance(t, torch.Tensor) and t.is_floating_point())
        if total > stored:
            return f"it records {total} parameters, but model.pt holds {stored} values"
    return None


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
