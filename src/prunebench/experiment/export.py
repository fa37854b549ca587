"""A language-model run's pruned (or recovered) model as a Hugging Face directory.

``prunebench export RUN --out DIR`` writes what ``transformers``' ``save_pretrained`` writes for
the model (config.json, model.safetensors, generation_config.json) and its tokenizer, so
``AutoModelForCausalLM.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)`` load it
and any tool built on them (lm-eval-harness, vLLM) can run it. Beside them, ``prunebench.json``
says which run the weights come from.

The run's model is rebuilt as the run left it: the pretrained weights (checked against the SHA-256
the run recorded), then the run's ``model.pt`` over them (the pruned layers' weights, or every
weight after recovery). Before anything is written, every weight its mask prunes is checked to be
exactly zero. The directory is written into a staging folder beside ``DIR`` and renamed into
place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import ConfigError, DataError
from prunebench.store.layout import MASK_FILE, MODEL_FILE, RESULT_FILE, completed_result, run_folder

EXPORT_INFO = "prunebench.json"  # which run the exported weights come from


def find_run(results_dir: Path, run: str) -> dict[str, Any]:
    """The whole completed result whose run id is ``run`` or starts with it; ConfigError otherwise."""
    if not run:
        raise ConfigError("RUN: give a run id or its prefix (`prunebench results` lists them)")
    if not results_dir.is_dir():
        raise ConfigError(f"--results: {results_dir} is not a results directory")
    matches = sorted(p.name for p in results_dir.iterdir() if p.name.startswith(run) and (p / RESULT_FILE).is_file())
    if run in matches:
        matches = [run]
    if not matches:
        raise ConfigError(f"RUN: no run {run!r} in {results_dir} (`prunebench results --results {results_dir}` lists them)")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise ConfigError(f"RUN: {run!r} names {len(matches)} runs ({shown}); give more of the run id")
    result = completed_result(results_dir, matches[0])
    if result is None:
        raise DataError(f"RUN: run {matches[0]} in {results_dir} is not a whole completed run "
                        f"(its {RESULT_FILE}, {MASK_FILE} or {MODEL_FILE} is missing or damaged)")
    return result


def check_out(out: Path) -> None:
    """``out`` must not exist yet, or be an empty directory; ConfigError naming --out."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out: {out} is not empty; give a new or empty directory")
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out: cannot create {out} ({parent} is not a writable directory)")


def exported_model(results_dir: Path, result: dict[str, Any]) -> tuple[Any, Any]:
    """The run's model (pretrained weights, then the run's model.pt) and the tokenizer."""
    from prunebench.models.lm import load_causal_lm
    from prunebench.store.artifacts import load_tensors

    run_id = result["run_id"]
    about = result.get("language_model")
    model_name = (result.get("spec") or {}).get("model")
    if not isinstance(about, dict) or not model_name:
        raise ConfigError(f"RUN: run {run_id} is a classifier's run (model {model_name!r}); "
                          "export writes language models only")
    loaded = load_causal_lm(str(model_name))
    if loaded.sha256 != about.get("pretrained_sha256"):
        raise DataError(f"RUN: run {run_id} was pruned from other weights than {model_name!r} has now "
                        f"(SHA-256 {loaded.sha256}, the run recorded {about.get('pretrained_sha256')})")
    model = loaded.model
    folder = run_folder(results_dir, run_id)
    stored, mask = load_tensors(folder / MODEL_FILE), load_tensors(folder / MASK_FILE)
    state = model.state_dict()
    unknown = sorted(set(stored) - set(state))
    if unknown:
        raise DataError(f"RUN: {folder / MODEL_FILE} holds weights {model_name!r} does not have: {', '.join(unknown[:3])}")
    with torch.no_grad():
        for name, tensor in stored.items():
            if state[name].shape != tensor.shape:
                raise DataError(f"RUN: {folder / MODEL_FILE}: {name} has shape {tuple(tensor.shape)}, "
                                f"{model_name!r} has {tuple(state[name].shape)}")
            state[name].copy_(tensor)  # state_dict's tensors are the model's own parameters
        for name, keep in mask.items():
            if name not in state or bool(state[name][~keep.to(torch.bool)].any()):
                raise DataError(f"RUN: {folder / MODEL_FILE}: {name} is not zero where {MASK_FILE} prunes it")
    return model, loaded.tokenizer


def export_run(results_dir: Path, run: str, out: Path) -> Path:
    """Write run ``run``'s model and tokenizer to ``out`` as a Hugging Face directory; returns ``out``.

    Bad input (no such run, a classifier's run, a non-empty ``out``) is a ConfigError or DataError
    raised before anything is written."""
    check_out(out)
    result = find_run(results_dir, run)
    model, tokenizer = exported_model(results_dir, result)
    info = {
        "run_id": result["run_id"], "model": result["spec"]["model"], "strategy": result["spec"]["prune"]["strategy"],
        "structure": result["spec"]["prune"].get("structure"), "sparsity": (result.get("sizes") or {}).get("sparsity"),
        "recovered": bool((result["language_model"] or {}).get("recovery")),
        "pretrained_sha256": result["language_model"]["pretrained_sha256"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        model.save_pretrained(staging)  # safetensors; a tied LM head is stored once and re-tied on load
        tokenizer.save_pretrained(staging)
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out.is_dir():
            out.rmdir()  # empty (checked above): replaced by the whole staged directory
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
